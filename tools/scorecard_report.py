"""Scorecards and n-gram baselines of the shipped checkpoints: the trust section of docs/UNITS.md,
and each checkpoint's controls sidecar (``<name>.scorecard.json``, :mod:`rnnviz.units.scorecard_cache`).

Run from the repository root (it ablates units step by step: minutes per checkpoint)::

    nice -n 15 python -m tools.scorecard_report [--out FILE] [--no-write] [NAME ...]

``tools.units_report`` includes :func:`section` for every checkpoint in docs/UNITS.md. Per
checkpoint: the scorecard (:func:`rnnviz.units.scorecard`, defaults: 5 random-init models, 20
random draws, seed 0, every built-in feature that varies over the slice, at most :data:`MAX_CAUSAL`
units ablated per feature plus the unit the unit finder names best for it) on the held-out
scorecard slice (:func:`rnnviz.units.scorecard_cache.scorecard_sample`), and held-out nats/char
of the RNN and of n-gram models n = 1 … 5 (:mod:`rnnviz.baseline`, interpolated Kneser–Ney fitted
on the training split) on the unit index's held-out sample.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pandas as pd
import torch

from rnnviz import features as F
from rnnviz.baseline import model_baseline
from rnnviz.checkpoint import CHECKPOINT_DIR, list_checkpoints, load_model, resolve_checkpoint
from rnnviz.corpora import CORPORA_DIR
from rnnviz.model import CharRNN
from rnnviz.trace import trace
from rnnviz.units import SAMPLE_CHARS, UnitsError, get_index, rank_units, scorecard, training_sample
from rnnviz.units.sample import held_out_sample
from rnnviz.units.scorecard import ALPHA, MIN_DELTA, Z_CAUSAL
from rnnviz.units.scorecard_cache import (SCORECARD_CHARS, load_controls, scorecard_sample, verdicts_of,
                                          write_controls)

#: Units ablated per feature (largest effect first among those that beat the controls).
MAX_CAUSAL = 3


def claimed_units(model: CharRNN, corpora_dir: Path | None = None) -> dict[str, str]:
    """Feature → the unit the unit finder ranks first by |AUC − ½| on the index sample (the claim
    the earlier report made), for every built-in feature it can rank."""
    index = get_index(model, max_chars=SAMPLE_CHARS, corpora_dir=corpora_dir)
    out = {}
    for name in F.FEATURE_NAMES:
        try:
            out[name] = rank_units(index, name, by="auc", top=1).top[0].unit.name
        except (UnitsError, F.FeatureError):
            continue
    return out


def baseline_rows(model: CharRNN, corpora_dir: Path | None = None) -> tuple[list[str], dict[str, float]]:
    """Markdown rows and figures: held-out nats/char of the RNN and of n-grams n = 1 … 5."""
    t0 = time.perf_counter()
    base = model_baseline(model, corpora_dir=corpora_dir)
    held, _ = held_out_sample(base.held_out, 1.0, SAMPLE_CHARS)
    figures = {f"{n}-gram": base.models[n].nats_per_char(held) for n in base.models}
    figures["RNN"] = float(trace(model, held, preprocess_text=False, gates=False).surprisal.double().mean())
    rows = [f"Held-out nats/char on the last {len(held):,} characters of the validation part (n-grams: "
            f"interpolated Kneser–Ney fitted on the last {base.train_chars:,} characters of the training "
            f"split, {time.perf_counter() - t0:.0f} s):", "",
            "| model | " + " | ".join(figures) + " |", "|---|" + "---|" * len(figures),
            "| nats/char | " + " | ".join(f"{v:.3f}" for v in figures.values()) + " |", ""]
    return rows, figures


def _fmt(x: float, spec: str = ".3f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _p(p: float) -> str:
    return "< 1e-99" if p < 1e-99 else f"{p:.1e}"


def _row_text(r: pd.Series) -> str:
    name = f"layer{r.layer}.{r.state}[{r.unit}]"
    stat = f"AUC {r.stat:.3f}" if r.kind == "auc" else f"r {r.stat:+.3f}"
    return (f"{name} | {stat} | {r.random_init_p95:.3f} | {_p(r.p_value)} | "
            f"{_fmt(r.delta_loss, '+.4f')} | {_fmt(r.delta_loss_elsewhere, '+.4f')} | "
            f"{_fmt(r.random_delta_z, '+.1f')} | **{r.verdict}**")


def feature_table(df: pd.DataFrame, claims: dict[str, str]) -> list[str]:
    """One row per feature: counts of verdicts, the best unit's row, the finder's claimed unit."""
    lines = ["| feature | on where | beat controls | causal | best unit by effect | stat | random-init p95 | "
             "p (Holm) | Δ loss on | Δ loss elsewhere | z | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, g in df.groupby("feature", sort=False):
        best = g.sort_values(["effect"], ascending=False).iloc[0]
        lines.append(f"| {name} | {df.attrs['rules'][name]} | {int(g.beats_controls.sum())} | "
                     f"{int((g.verdict == 'causal').sum())} | {_row_text(best)} |")
    lines += ["", "Earlier claims (the unit finder's best unit by |AUC − ½| on the index sample) re-judged "
              "on the slice:", "", "| feature | claimed unit | stat | random-init p95 | p (Holm) | Δ loss on | "
              "Δ loss elsewhere | z | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for name, unit in claims.items():
        g = df[(df.feature == name)]
        row = g[[f"layer{r.layer}.{r.state}[{r.unit}]" == unit for r in g.itertuples()]]
        if len(row):
            lines.append(f"| {name} | {_row_text(row.iloc[0])} |")
    return lines + [""]


def measurable_features(sample: str) -> list[str]:
    """The built-in features that vary over ``sample``; the line-based ones only when it has line
    breaks (the d2l preprocessing removes them, and a column that only grows is not a feature)."""
    lines_only = {"position_in_line", "indentation"}
    return [f for f in F.FEATURE_NAMES if float(F.feature(f, sample).std()) > 0
            and ("\n" in sample or f not in lines_only)]


def section(name: str, write: bool = True, corpora_dir: Path | None = None,
            checkpoint_dir: Path | None = None) -> tuple[list[str], dict]:
    """The markdown of one checkpoint's scorecard and baseline (and its sidecar when ``write``);
    returns (lines, summary figures). Folders: default rnnviz.corpora's and rnnviz.checkpoint's."""
    model = load_model(name, checkpoint_dir)
    path = resolve_checkpoint(name, checkpoint_dir)
    lines = [f"### {name}: scorecard", ""]
    try:
        sample, source = scorecard_sample(model, corpora_dir=corpora_dir)
        claims = claimed_units(model, corpora_dir)
    except UnitsError as err:
        return lines + [f"Not measured: {err}", ""], {}
    feats = measurable_features(sample)
    t0 = time.perf_counter()
    df = scorecard(model, sample, feats, max_causal=MAX_CAUSAL, test_units=sorted(set(claims.values())),
                   cache=load_controls(path))   # used only when it matches exactly
    seconds = time.perf_counter() - t0
    if write:
        write_controls(df.attrs["controls"], path, source, verdicts_of(df))
    c = df.attrs["controls"]
    counts = df.verdict.value_counts()
    summary = {"units": int(df.groupby(["layer", "state", "unit"]).ngroups), "features": len(feats),
               "causal": int(counts.get("causal", 0)), "correlational": int(counts.get("correlational", 0)),
               "causal_units": sorted({f"layer{r.layer}.{r.state}[{r.unit}] ({r.feature})"
                                       for r in df[df.verdict == "causal"].itertuples()})}
    lines += [f"Slice: {source}. {summary['units']} units × {len(feats)} features "
              f"({len(df):,} pairs, Holm over all of them); {c['controls']} random-init models, "
              f"{c['draws']} random units ablated, seed {c['seed']}, shifts ≥ {c['min_shift']} characters; "
              f"computed in {seconds:.0f} s.", "",
              f"Verdicts (pairs): {summary['causal']} causal, {summary['correlational']} correlational, "
              f"{int(counts.get('chance', 0))} chance. Causal: "
              + (", ".join(summary["causal_units"]) or "none") + ".", ""]
    lines += feature_table(df, {k: v for k, v in claims.items() if k in feats})
    rows, figures = baseline_rows(model, corpora_dir)
    summary["nats"] = figures
    return lines + rows, summary


def summary_table(summaries: dict[str, dict]) -> list[str]:
    """One row per checkpoint: pairs by verdict, the causal units, RNN and n-gram nats/char."""
    lines = ["| checkpoint | units × features | causal | correlational | causal (unit, feature) | "
             "RNN nats/char | 5-gram | best n-gram |", "|---|---|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        if not s:
            lines.append(f"| {name} | not measured | | | | | | |")
            continue
        nats = s["nats"]
        best = min((k for k in nats if k != "RNN"), key=nats.get)
        lines.append(f"| {name} | {s['units']} × {s['features']} | {s['causal']} | {s['correlational']} | "
                     f"{', '.join(s['causal_units']) or '—'} | {nats['RNN']:.3f} | {nats['5-gram']:.3f} | "
                     f"{best} {nats[best]:.3f} |")
    return lines + [""]


def header() -> list[str]:
    return ["## Trust scorecard: which units pass the controls (measured)", "",
            "Generated by `nice -n 15 python -m tools.scorecard_report` (also run by `tools.units_report`); "
            "definitions in `rnnviz/units/scorecard.py`, `controls.py`, `causal.py` and `rnnviz/baseline.py`.",
            f"A (unit, feature) **beats the controls** when its effect (|AUC − ½| for a binary feature, |r| for "
            f"a graded one) exceeds the 95th percentile of the same effect over every unit of 5 untrained models "
            f"of the same config, and its circular-shift permutation p-value, Holm-corrected over units × "
            f"features, is below {ALPHA}. It is **causal** when, besides, mean-ablating it raises the loss where "
            f"the feature is on by ≥ {MIN_DELTA} nats/char, more than elsewhere, with a z ≥ {Z_CAUSAL:g} against "
            f"20 random single-unit ablations. At most {MAX_CAUSAL} units per feature are ablated (largest "
            f"effect first) plus the finder's claimed unit; the others that beat the controls are listed as "
            f"correlational without a causal test. The slice is the last {SCORECARD_CHARS:,} held-out "
            "characters (the ablations run step by step, which bounds its length).", ""]


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tools.scorecard_report", description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the markdown here instead of stdout")
    ap.add_argument("--no-write", action="store_true", help="do not write the controls sidecars")
    ap.add_argument("--corpora", type=Path, default=os.environ.get("RNNVIZ_CORPORA") or CORPORA_DIR,
                    help="folder of the training corpora (default: $RNNVIZ_CORPORA or ../shared/corpora)")
    ap.add_argument("--checkpoints", type=Path, default=os.environ.get("RNNVIZ_CHECKPOINT_DIR") or CHECKPOINT_DIR,
                    help="folder of the checkpoints (default: $RNNVIZ_CHECKPOINT_DIR or checkpoints/)")
    ap.add_argument("names", nargs="*", help="checkpoint names (default: all shipped)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = args.names or [i.name for i in list_checkpoints(args.checkpoints)]
    body, summaries = [], {}
    for name in names:      # the file is rewritten after every checkpoint: a long run keeps its progress
        lines, summaries[name] = section(name, write=not args.no_write, corpora_dir=args.corpora,
                                         checkpoint_dir=args.checkpoints)
        body += lines
        text = "\n".join(header() + summary_table(summaries) + body) + "\n"
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
    if not args.out:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
