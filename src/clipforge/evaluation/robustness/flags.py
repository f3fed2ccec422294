"""``clipforge eval robustness`` flags beyond the common ones, and the config they build.

Flags default to ``None`` so :class:`.config.RobustnessConfig` holds the one default; ``--help``
shows it, read from the dataclass (the pattern of :mod:`clipforge.cli.defaults`, which this layer
may not import).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..embedding import EncodeConfig
from .config import ATTACKS, VIEWS, RobustnessConfig, parse_eps_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    def flag(name: str, field: str, **kwargs) -> None:
        default = getattr(RobustnessConfig, field)
        kwargs["help"] = f"{kwargs['help']} (default: {default})"
        parser.add_argument(name, **kwargs)

    flag("--attack", "attack", choices=list(ATTACKS), help="pgd | uap | sga | views")
    parser.add_argument(
        "--eps",
        help="L∞ radius in pixels [0, 1] (number or fraction), or a list to sweep: "
        "1/255,2/255,4/255,8/255 (default: 4/255)",
    )
    flag("--steps", "steps", type=int, help="PGD / SGA iterations per image")
    parser.add_argument("--step-size", help="step α, e.g. 1/255 (default: eps/4)")
    parser.add_argument(
        "--no-random-start", action="store_true", help="start PGD at δ = 0 (default: uniform)"
    )
    flag(
        "--on",
        "on",
        choices=["auto", "zeroshot", "retrieval"],
        help="task attacked; auto: each the data supports (labels, captions)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        help="attack N images spread evenly over the data (every k-th); a UAP also trains on N "
        "of --uap-data (default: all)",
    )
    flag("--seed", "seed", type=int, help="seed of the random start and of the UAP's init")
    parser.add_argument("--surrogate", help="sga: model the attack is computed on (required)")
    parser.add_argument(
        "--uap-data", help="uap: data the perturbation is trained on (default: --data, split=train)"
    )
    flag(
        "--uap-epochs",
        "uap_epochs",
        type=int,
        help="uap: passes over --uap-data, one step per batch (small data: lower --batch-size)",
    )
    parser.add_argument("--save-perturbation", metavar="FILE", help="uap: write δ here (.pt)")
    parser.add_argument(
        "--perturbation", metavar="FILE", help="uap: test this saved δ (no training)"
    )
    parser.add_argument(
        "--views", help=f"views: comma-separated subset (default: {','.join(VIEWS)})"
    )
    parser.add_argument("--plot", metavar="PNG", help="accuracy-vs-eps plot (needs matplotlib)")
    parser.add_argument(
        "--templates",
        metavar="FILE",
        help="zero-shot prompt templates (default: the data set's own, else the built-in)",
    )


def default_uap_data(data: str) -> str | None:
    """``builtin:emoji?split=val`` → ``builtin:emoji?split=train``; None without a split."""
    spec, question, query = data.partition("?")
    parts = query.split("&") if question else []
    splits = [p for p in parts if p.startswith("split=")]
    if not splits or splits[0] == "split=train":
        return None
    return spec + "?" + "&".join("split=train" if p.startswith("split=") else p for p in parts)


def config_from_args(args: argparse.Namespace, encode: EncodeConfig) -> RobustnessConfig:
    attack = args.attack or RobustnessConfig.attack
    uap_data = args.uap_data or (default_uap_data(args.data) if attack == "uap" else None)
    views = tuple(v.strip() for v in args.views.split(",") if v.strip()) if args.views else None
    return RobustnessConfig(
        **_given(
            attack=args.attack,
            eps=parse_eps_list(args.eps) if args.eps is not None else None,
            steps=args.steps,
            step_size=parse_eps_list(args.step_size)[0] if args.step_size else None,
            on=args.on,
            limit=args.limit,
            seed=args.seed,
            surrogate=args.surrogate,
            uap_data=uap_data,
            uap_epochs=args.uap_epochs,
            save_perturbation=Path(args.save_perturbation) if args.save_perturbation else None,
            perturbation=Path(args.perturbation) if args.perturbation else None,
            views=views,
            plot=Path(args.plot) if args.plot else None,
            templates_file=Path(args.templates) if args.templates else None,
        ),
        random_start=not args.no_random_start,
        encode=encode,
    )


def _given(**values):
    """The options the user set (the others keep the dataclass default)."""
    return {key: value for key, value in values.items() if value is not None}
