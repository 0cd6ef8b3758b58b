"""Source folders that tests submit: the seed's Ridge example and small scripts."""
from __future__ import annotations

import os
import textwrap

SEED_TRAIN = '''
import os
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from tracking import Run
import joblib
import mylib

X, y = load_diabetes(return_X_y=True)
run = Run.get_context()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
data = {"train": {"X": X_train, "y": y_train}, "test": {"X": X_test, "y": y_test}}

# list of numbers from 0.0 to 1.0 with a 0.05 interval
alphas = mylib.get_alphas()

for alpha in alphas:
    reg = Ridge(alpha=alpha)
    reg.fit(data["train"]["X"], data["train"]["y"])
    preds = reg.predict(data["test"]["X"])
    mse = mean_squared_error(preds, data["test"]["y"])
    run.log('alpha', alpha)
    run.log('mse', mse)
    model_file_name = 'ridge_{0:.2f}.pkl'.format(alpha)
    with open(model_file_name, "wb") as file:
        joblib.dump(value=reg, filename=model_file_name)
    run.upload_file(name=model_file_name, path_or_stream=model_file_name)
    print('alpha is {0:.2f}, and mse is {1:0.2f}'.format(alpha, mse))
'''

SEED_MYLIB = '''
import numpy as np

def get_alphas():
    # list of numbers from 0.0 to 1.0 with a 0.05 interval
    return np.arange(0.0, 1.0, 0.05)
'''


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
