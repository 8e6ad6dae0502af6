"""Generate docs/UNITS.md: what the units of every shipped checkpoint track, measured.

Run from the repository root::

    python -m tools.units_report --out docs/UNITS.md

For each checkpoint: the unit index over its held-out sample (:func:`rnnviz.units.get_index`), the
best units of every built-in feature (:func:`rnnviz.units.rank_units`), one hypothesis → match
example, two ablations, and how long a one-letter substitution is remembered
(:func:`rnnviz.units.counterfactual`); first, the trust scorecard of :mod:`tools.scorecard_report`
(which also writes each checkpoint's ``<name>.scorecard.json``; run the whole report with
``nice -n 15``: the scorecard ablates units step by step, minutes per checkpoint). Every number is
measured; definitions are in the docstrings of :mod:`rnnviz.units` and :mod:`rnnviz.baseline`.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

import torch

from rnnviz import features as F
from rnnviz.checkpoint import list_checkpoints, load_model
from rnnviz.corpora import CORPORA_DIR
from rnnviz.model import CharRNN
from rnnviz.serving.threads import one_thread
from rnnviz.trace import trace
from rnnviz.units import (MAX_INDEX_ELEMENTS, SAMPLE_CHARS, FinderResult, UnitIndex, UnitScore, UnitsError,
                          ablate, counterfactual, find_matches, get_index, rank_units, select_units)

#: Thresholds for the report's highlights.
HIGHLIGHT_AUC = 0.9
HIGHLIGHT_R = 0.6


def _fmt(x: float) -> str:
    return f"{x:+.2f}" if math.isfinite(x) else "—"


def _memory_probe(model: CharRNN, text: str, edits: int = 20, window: int = 300,
                  tol: float = 1e-2) -> dict[str, list[int | None]]:
    """Single-character substitutions at ``edits`` evenly spaced letters of ``text``: the steps
    until each layer's ‖ΔH‖ (and ‖ΔC‖) stays below tol × its value right after the edit."""
    letters = [t for t in range(len(text) - window) if text[t].isalpha()]
    if not letters:
        return {}
    picks = [letters[int(i * (len(letters) - 1) / max(1, edits - 1))] for i in range(edits)]
    out: dict[str, list[int | None]] = {}
    for t in picks:
        ch = text[t]
        rep = "a" if ch.lower() != "a" else "e"
        rep = rep.upper() if ch.isupper() and rep.upper() in model.vocab else rep
        piece = text[max(0, t - 200):t + window]
        cf = counterfactual(model, piece, t - max(0, t - 200), t - max(0, t - 200) + 1, rep)
        for name in list(cf.delta) + ["kl"]:
            out.setdefault(name, []).append(cf.memory(name, tol))
    return out


#: The hypothesis probe of the report: a span of a fixed sentence per corpus kind.
_PROBE_TEXTS = {"d2l": ("the time machine by h g wells", "time"),
                "python": ("def f(x):\n    return [x * (x + 1) for x in range(10)]\n", "(x + 1)"),
                "prose": ("KING:\nGood morrow, friends; what news from the northern camp?\n", "Good")}


def _probes(model: CharRNN, index: UnitIndex) -> list[str]:
    """Report lines: one hypothesis → match example and two ablations (measured)."""
    out: list[str] = []
    kind = ("d2l" if model.config.preprocessing == "d2l" else
            "python" if "def " in index.text and "return" in index.text else "prose")
    text, needle = _PROBE_TEXTS[kind]
    tr = trace(model, text)
    a = tr.text.find(needle)
    if a >= 0:
        hyp = select_units(index, tr, a, a + len(needle))
        matches, total = find_matches(index, hyp, top=8, context=0)
        shown = ", ".join(f"`{m.text}`".replace("\n", "⏎") for m in matches) or "—"
        out += [f"Hypothesis → match: span {needle!r} of {text!r}: "
                + (f"{len(hyp.units)} unit direction(s) on inside and off around at the automatic "
                   f"θ = {hyp.threshold:.3f} ({hyp.separable} separable at some θ ≥ 0); they switch on "
                   f"together at {total:,} place(s) of the sample; the best-ranked: {shown}."
                   if hyp.threshold is not None else "no unit separates the span at any θ ≥ 0."), ""]
    piece = index.text[:2000]
    rows = []
    for feat in ("whitespace", "vowel"):
        try:
            best = rank_units(index, feat, by="auc", top=1).top[0]
        except (UnitsError, F.FeatureError):
            continue
        ab = ablate(model, piece, best.unit.layer, best.unit.unit, kind=best.unit.kind)
        rows.append(f"| {best.unit.name} (best for {feat}, AUC {best.auc:.3f}) | {ab.mean_delta:+.4f} | "
                    f"{int(ab.argmax_changed.sum())} / {len(piece)} | {float(ab.kl.mean()):.4f} |")
    if rows:
        out += [f"Ablation (unit zeroed after every step) over the first {len(piece):,} characters of "
                "the sample:", "", "| unit | mean Δ surprisal (nats/char) | top-1 prediction changed | "
                "mean KL (nats) |", "|---|---|---|---|", *rows, ""]
    return out


def _header(max_chars: int) -> list[str]:
    """The report's title and how it was measured."""
    return ["# What the units of the shipped models track (measured)", "",
            "Generated by `nice -n 15 python -m tools.units_report --out docs/UNITS.md`; every number below is",
            "measured by that command, nothing is written by hand. Definitions (Pearson r, the",
            "rank-based AUC and its positive label, the corpus sample) are in the docstrings of",
            "`rnnviz/units/` and `rnnviz/features.py`.", "",
            f"Sample: the last ≤ {max_chars:,} characters of each model's training corpus (capped so "
            f"that N·U ≤ {MAX_INDEX_ELEMENTS:,}). Python {platform.python_version()}, "
            f"torch {torch.__version__}; load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} CPU(s) when the report started (build and query times are wall "
            "clock on that shared machine).", ""]


def _feature_highlight(checkpoint: str, name: str, res: FinderResult, h: UnitScore,
                       hr: UnitScore) -> str:
    """The highlight line of a feature whose best unit passes HIGHLIGHT_AUC or HIGHLIGHT_R."""
    inv = " (inverted: low when the label is on)"
    line = (f"- **{checkpoint}**, **{name}** ({res.label_rule}; {res.n_positive:,} of "
            f"{res.n:,} positive): best AUC `{h.unit.name}` AUC = {h.auc:.3f}, "
            f"r = {h.r:+.2f}{inv if h.auc < 0.5 else ''}")
    if hr.unit != h.unit:
        line += f"; best |r| `{hr.unit.name}` r = {hr.r:+.2f}, AUC = {hr.auc:.3f}"
    return line + "."


def _feature_row(checkpoint: str, index: UnitIndex, name: str, preprocessing: str, top: int,
                 highlights: list[str]) -> str:
    """One row of the feature table (appends to ``highlights`` when the best unit stands out)."""
    if name in ("position_in_line", "indentation") and "\n" not in index.text:
        return (f"| {name} | — | not measured: the sample has no line breaks (the "
                f"`{preprocessing}` preprocessing removes them) | — | — |")
    try:
        res = rank_units(index, name, by="auc", top=top)
        by_r = rank_units(index, name, by="r", top=1)
    except (UnitsError, F.FeatureError) as err:
        return f"| {name} | — | {err} | — | — |"
    best = "; ".join(f"{s.unit.name} ({_fmt(s.r)}, {s.auc:.3f})" for s in res.top)
    h, hr = res.top[0], by_r.top[0]
    if max(h.auc, 1 - h.auc) >= HIGHLIGHT_AUC or abs(hr.r) >= HIGHLIGHT_R:
        highlights.append(_feature_highlight(checkpoint, name, res, h, hr))
    s = by_r.top[0]
    return (f"| {name} | {res.label_rule} ({res.n_positive:,} of {res.n:,}) | {best} | "
            f"{s.unit.name} ({_fmt(s.r)}, {s.auc:.3f}) | {res.seconds:.3f} |")


def _memory_section(checkpoint: str, model: CharRNN, index: UnitIndex, highlights: list[str]) -> list[str]:
    """The memory table of :func:`_memory_probe` (empty when the sample has no letters to edit)."""
    mem = _memory_probe(model, index.text)
    if not mem:
        return []
    lines = ["Memory of a one-letter substitution (20 edits spread over the sample): steps "
             "until the difference stays below 1 % of its size right after the edit, within "
             "300 following characters (upper median of the 20; “>300” = never within the "
             "window).", "",
             "| state | median steps | settled / edits |", "|---|---|---|"]
    meds: list[str] = []
    for name, vals in mem.items():
        settled = sorted(v for v in vals if v is not None)
        n_none = len(vals) - len(settled)
        ordered = settled + [math.inf] * n_none
        med = ordered[len(ordered) // 2]
        lines.append(f"| {'KL(P‖P′)' if name == 'kl' else '‖Δ' + name + '‖'} | "
                     f"{'>300' if med == math.inf else med} | {len(settled)} / {len(vals)} |")
        meds.append(f"{'KL' if name == 'kl' else '‖Δ' + name.split('.')[-1].upper() + '‖'} "
                    f"{'>300' if med == math.inf else med}")
    lines.append("")
    highlights.append(f"- **{checkpoint}** remembers a one-letter substitution for (median "
                      f"steps until < 1 %): {', '.join(meds)}.")
    return lines


def _checkpoint_section(checkpoint: str, max_chars: int, top: int, highlights: list[str],
                        corpora_dir: Path | None = None, checkpoint_dir: Path | None = None) -> list[str]:
    """Everything measured on one shipped checkpoint (appends its highlights)."""
    model = load_model(checkpoint, checkpoint_dir)
    corpus = (getattr(model, "provenance", {}) or {}).get("corpus")
    c = model.config
    lines = [f"## {checkpoint}", "",
             f"{c.cell}, {c.num_layers} layer(s) × {c.hidden_size} units, |V| = {c.vocab_size}, "
             f"preprocessing `{c.preprocessing}`, corpus `{corpus}`, "
             f"val loss {model.provenance.get('val_loss', '—')}.", ""]
    try:
        index = get_index(model, max_chars=max_chars, corpora_dir=corpora_dir)
    except UnitsError as err:
        return lines + [f"Not measured: {err}", ""]
    lines += [f"Index: {index.source}; N = {len(index):,} steps × U = {index.num_units:,} units, "
              f"built in {index.build_seconds:.1f} s.", "",
              "| feature | AUC label | best units by \\|AUC − ½\\| (r, AUC) | best unit by \\|r\\| (r, AUC) | query s |",
              "|---|---|---|---|---|"]
    lines += [_feature_row(checkpoint, index, name, c.preprocessing, top, highlights)
              for name in F.FEATURE_NAMES]
    lines.append("")
    lines += _probes(model, index)
    return lines + _memory_section(checkpoint, model, index, highlights)


def _trust(infos, write: bool, corpora_dir: Path | None, checkpoint_dir: Path | None) -> list[str]:
    """The scorecard section (:mod:`tools.scorecard_report`) of every checkpoint, summary first."""
    from tools import scorecard_report as SR

    body, summaries = [], {}
    for info in infos:
        lines, summaries[info.name] = SR.section(info.name, write=write, corpora_dir=corpora_dir,
                                                 checkpoint_dir=checkpoint_dir)
        body += lines
    from tools import sae_report as SAER

    sae = SAER.markdown([i.name for i in infos], write, corpora_dir, checkpoint_dir).splitlines()
    return SR.header() + SR.summary_table(summaries) + body + [SAER.BEGIN, *sae, SAER.END, ""]


def report(names: list[str] | None = None, max_chars: int = SAMPLE_CHARS, top: int = 3,
           corpora_dir: Path | None = None, checkpoint_dir: Path | None = None,
           scorecard: bool = True, write_controls: bool = True) -> str:
    """Measure every shipped checkpoint (of ``checkpoint_dir``; or ``names``) on its corpus (from
    ``corpora_dir``) and return the markdown of docs/UNITS.md: the trust scorecard (and each
    checkpoint's controls sidecar when ``write_controls``), then the unit finder's highlights and
    per-checkpoint details."""
    infos = list_checkpoints(checkpoint_dir)
    if names:
        infos = [i for i in infos if i.name in names]
    header = _header(max_chars)
    if not infos:
        header += ["**No shipped checkpoint was found** in `checkpoints/` when this was generated.", ""]
    lines: list[str] = []
    highlights: list[str] = []
    for info in infos:
        lines += _checkpoint_section(info.name, max_chars, top, highlights, corpora_dir, checkpoint_dir)
    if highlights:
        header += ["### Highlights (correlation only)", "",
                   f"Selected by the script: the best unit of a feature when its AUC ≥ {HIGHLIGHT_AUC} "
                   f"(or ≤ {1 - HIGHLIGHT_AUC:.1f}) or its |r| ≥ {HIGHLIGHT_R}; and the memory medians.",
                   "", *highlights, ""]
    trust = _trust(infos, write_controls, corpora_dir, checkpoint_dir) if scorecard and infos else []
    return "\n".join(header[:7] + trust + ["## Unit finder (correlation only; see the scorecard above)", ""]
                     + header[7:] + lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tools.units_report", description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the report here instead of stdout")
    ap.add_argument("--chars", type=int, default=SAMPLE_CHARS, help="sample size (characters)")
    ap.add_argument("--corpora", type=Path, default=os.environ.get("RNNVIZ_CORPORA") or CORPORA_DIR,
                    help="folder of the training corpora (default: $RNNVIZ_CORPORA or ../shared/corpora)")
    ap.add_argument("--no-scorecard", action="store_true", help="leave out the trust scorecard (slow)")
    ap.add_argument("names", nargs="*", help="checkpoint names (default: all shipped)")
    args = ap.parse_args(argv)
    with one_thread():   # the report is many small sequential ops: see rnnviz.serving.threads.one_thread
        md = report(args.names or None, args.chars, corpora_dir=args.corpora, scorecard=not args.no_scorecard)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(md, encoding="utf-8")
    else:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
