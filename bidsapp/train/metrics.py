"""Classification metrics shared by training (threshold choice) and evaluation (reports)."""

from __future__ import annotations

import math

import numpy as np

from ..classes import ALL_LABELS, LABELS, OTHER


def decide_labels(probs: np.ndarray, threshold: float) -> list[str]:
    best = probs.argmax(axis=1)
    return [LABELS[b] if probs[i, b] >= threshold else OTHER for i, b in enumerate(best)]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise(truth: list[str], predicted: list[str]) -> dict:
    """Accuracy (+ Wilson CI), per-class sensitivity/specificity, open-set rejection, confusion."""
    n = len(truth)
    correct = sum(t == p for t, p in zip(truth, predicted))
    labels = [lab for lab in ALL_LABELS if lab in truth or lab in predicted]
    per_class = {}
    for lab in labels:
        tp = sum(t == lab and p == lab for t, p in zip(truth, predicted))
        pos = sum(t == lab for t in truth)
        tn = sum(t != lab and p != lab for t, p in zip(truth, predicted))
        neg = n - pos
        per_class[lab] = {"n": pos, "sensitivity": tp / pos if pos else None,
                          "specificity": tn / neg if neg else None}
    others = [p for t, p in zip(truth, predicted) if t == OTHER]
    confusion = {t: {p: sum(tt == t and pp == p for tt, pp in zip(truth, predicted)) for p in labels}
                 for t in labels}
    return {"n": n, "accuracy": correct / n if n else 0.0, "accuracy_ci95": wilson(correct, n),
            "other_rejected": (sum(p == OTHER for p in others) / len(others)) if others else None,
            "per_class": per_class, "confusion": confusion}


def decisions(probs: np.ndarray, truth: list[str], threshold: float) -> dict:
    return {"threshold": threshold, **summarise(truth, decide_labels(probs, threshold))}


def choose_threshold(probs: np.ndarray, truth: list[str]) -> float:
    """Threshold that maximises the mean of known-class accuracy and open-set rejection.

    Balancing the two keeps the rare "other" series from being traded away for a point of
    accuracy on the common classes."""
    best, best_score = 0.5, -1.0
    known = np.array([t != OTHER for t in truth])
    for th in np.arange(0.2, 0.91, 0.025):
        pred = np.array(decide_labels(probs, th))
        tr = np.array(truth)
        acc_known = float(np.mean(pred[known] == tr[known])) if known.any() else 0.0
        rej = float(np.mean(pred[~known] == OTHER)) if (~known).any() else 1.0
        score = 0.5 * (acc_known + rej)
        if score > best_score + 1e-9:
            best, best_score = float(round(th, 3)), score
    return best


def calibration(probs: np.ndarray, truth: list[str], bins: int = 10) -> dict:
    """Expected calibration error of the top-class probability, with the reliability table."""
    top = probs.max(axis=1)
    correct = np.array([LABELS[b] == t for b, t in zip(probs.argmax(axis=1), truth)], float)
    edges = np.linspace(0, 1, bins + 1)
    table, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (top >= lo) & (top < hi if hi < 1 else top <= hi)
        if sel.any():
            conf, acc = float(top[sel].mean()), float(correct[sel].mean())
            ece += sel.mean() * abs(conf - acc)
            table.append({"bin": [round(lo, 2), round(hi, 2)], "n": int(sel.sum()),
                          "confidence": round(conf, 3), "accuracy": round(acc, 3)})
    return {"ece": round(float(ece), 4), "reliability": table}
