"""Plain-Python reference maths for the objectives' hand-computed tests.

Written without torch on purpose: a test computes its expected number here, term by term from
the paper's formula, and compares it with the objective's tensor code, so the two cannot share a
bug. Vectors are lists of floats, matrices lists of rows.
"""

from __future__ import annotations

import math

import torch


def t(values):
    """A reference value as the fp32 tensor the objective takes."""
    return torch.tensor(values, dtype=torch.float32)


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def unit(vectors):
    """Each row scaled to unit L2 norm."""
    return [[x / math.sqrt(sum(v * v for v in row)) for x in row] for row in vectors]


def transpose(matrix):
    return [list(col) for col in zip(*matrix)]


def softmax(row):
    exps = [math.exp(x) for x in row]
    return [e / sum(exps) for e in exps]


def ce(logits, target):
    """−log softmax(logits)[target]."""
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def soft_ce(logits, targets):
    """−Σ_k q_k log softmax(logits)_k: cross-entropy against a soft target distribution q."""
    log_z = math.log(sum(math.exp(v) for v in logits))
    return -sum(q * (v - log_z) for q, v in zip(targets, logits))


def infonce_rows(logits):
    """Mean over rows of −log softmax(row)[diagonal], plain Python."""
    total = 0.0
    for r, row in enumerate(logits):
        total += -row[r] + math.log(sum(math.exp(x) for x in row))
    return total / len(logits)


def nce(a_rows, b_rows, scale):
    """½ [CE over rows + CE over columns] of scale·A Bᵀ with positives on the diagonal."""
    logits = [[scale * dot(a, b) for b in b_rows] for a in a_rows]
    n = len(a_rows)
    rows = sum(ce(logits[i], i) for i in range(n)) / n
    cols = sum(ce([logits[j][i] for j in range(n)], i) for i in range(n)) / n
    return (rows + cols) / 2


def kl_rows(p_rows, q_rows):
    """Mean over rows of KL(p ‖ q) = Σ p log(p / q); terms with p = 0 contribute nothing."""
    return sum(
        sum(p * math.log(p / q) for p, q in zip(pr, qr) if p > 0) for pr, qr in zip(p_rows, q_rows)
    ) / len(p_rows)
