"""Source folders that tests submit: the seed's Ridge example and small scripts."""
from __future__ import annotations

import os
import textwrap

# the seed's second example, exactly as `runyard demo` writes it
from runner.demo import MYLIB as SEED_MYLIB  # noqa: E402
from runner.demo import TRAIN as SEED_TRAIN  # noqa: E402


def write_project(folder, files: dict[str, str]) -> str:
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(textwrap.dedent(text))
    return str(folder)


def seed_project(folder) -> str:
    return write_project(folder, {"train.py": SEED_TRAIN, "mylib.py": SEED_MYLIB})


def best_alpha_by_plain_sklearn() -> float:
    """The best alpha of the seed's grid, computed without runyard."""
    import numpy as np
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import train_test_split
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    scores = {}
    for alpha in np.arange(0.0, 1.0, 0.05):
        reg = Ridge(alpha=alpha).fit(X_train, y_train)
        scores[float(alpha)] = mean_squared_error(reg.predict(X_test), y_test)
    return min(scores, key=scores.get)
