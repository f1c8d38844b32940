"""Predicting clean/adversarial accuracies from zero-cost proxy values (spec §4.3).

    from robustnas.predict import Predictor, split
    X_train, X_test, y_train, y_test = split(proxies, accuracies)   # 80/20, random_state=42
    rf = Predictor("rf").fit(X_train, y_train)    # one multi-output forest for several targets
    rf.score(X_test, y_test)                      # test R², mean over targets
    rf.feature_importances_                       # MDI per proxy, sums to 1
    rf.save("rf.npz"); Predictor.load("rf.npz").predict(X_test)   # no pickle, same predictions
"""
from __future__ import annotations

from robustnas.predict._models import MODELS, Predictor, r2, split

__all__ = ["MODELS", "Predictor", "r2", "split"]
