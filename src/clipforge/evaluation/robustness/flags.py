"""``clipforge eval robustness`` flags beyond the common ones, and the config they build."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..embedding import EncodeConfig
from .config import ATTACKS, VIEWS, RobustnessConfig, parse_eps_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attack", default="pgd", help=f"{' | '.join(ATTACKS)} (default: pgd)")
    parser.add_argument(
        "--eps",
        default="4/255",
        help="L∞ radius in pixels [0, 1], or a list to sweep: 1/255,2/255,4/255,8/255 "
        "(default: 4/255)",
    )
    parser.add_argument("--steps", type=int, default=10, help="PGD/SGA steps (default: 10)")
    parser.add_argument("--step-size", help="PGD step α, e.g. 1/255 (default: eps/4)")
    parser.add_argument(
        "--no-random-start", action="store_true", help="start PGD at δ = 0 (default: uniform)"
    )
    parser.add_argument(
        "--on",
        default="auto",
        choices=["auto", "zeroshot", "retrieval"],
        help="task attacked; auto: each the data supports (default: auto)",
    )
    parser.add_argument("--limit", type=int, help="attack only the first N images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="random start / UAP init seed")
    parser.add_argument("--surrogate", help="sga: model the attack is computed on")
    parser.add_argument(
        "--uap-data", help="uap: data the perturbation is trained on (default: --data, split=train)"
    )
    parser.add_argument("--uap-epochs", type=int, default=5, help="uap: passes (default: 5)")
    parser.add_argument("--save-perturbation", metavar="FILE", help="uap: write δ here (.pt)")
    parser.add_argument("--perturbation", metavar="FILE", help="uap: test this saved δ")
    parser.add_argument(
        "--views", default=",".join(VIEWS), help=f"views: which (default: {','.join(VIEWS)})"
    )
    parser.add_argument("--plot", metavar="PNG", help="accuracy-vs-eps plot (needs matplotlib)")
    parser.add_argument("--templates", metavar="FILE", help="zero-shot prompt templates")


def default_uap_data(data: str) -> str | None:
    """``builtin:emoji?split=val`` → ``builtin:emoji?split=train``; None without a split."""
    spec, question, query = data.partition("?")
    parts = query.split("&") if question else []
    splits = [p for p in parts if p.startswith("split=")]
    if not splits or splits[0] == "split=train":
        return None
    return spec + "?" + "&".join("split=train" if p.startswith("split=") else p for p in parts)


def config_from_args(args: argparse.Namespace, encode: EncodeConfig) -> RobustnessConfig:
    step = parse_eps_list(args.step_size)[0] if args.step_size else None
    uap_data = args.uap_data or (default_uap_data(args.data) if args.attack == "uap" else None)
    return RobustnessConfig(
        attack=args.attack,
        eps=parse_eps_list(args.eps),
        steps=args.steps,
        step_size=step,
        random_start=not args.no_random_start,
        on=args.on,
        limit=args.limit,
        seed=args.seed,
        surrogate=args.surrogate,
        uap_data=uap_data,
        uap_epochs=args.uap_epochs,
        save_perturbation=Path(args.save_perturbation) if args.save_perturbation else None,
        perturbation=Path(args.perturbation) if args.perturbation else None,
        views=tuple(v.strip() for v in args.views.split(",") if v.strip()),
        plot=Path(args.plot) if args.plot else None,
        templates_file=Path(args.templates) if args.templates else None,
        encode=encode,
    )
