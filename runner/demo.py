"""``runyard demo``: the seed's second example (Ridge alpha sweep with a helper module),
submitted with ScriptRunConfig to the local target on the embedded default store."""
from __future__ import annotations

import os
import textwrap

import click

from .cli import _workspace, main, store_option

TRAIN = '''
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from tracking import Run          # was: from azureml.core.run import Run
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

MYLIB = '''
import numpy as np


def get_alphas():
    # list of numbers from 0.0 to 1.0 with a 0.05 interval
    return np.arange(0.0, 1.0, 0.05)
'''


@main.command()
@store_option
@click.option("--folder", default="runyard-demo", show_default=True,
              help="Where to write the example's train.py and mylib.py")
def demo(store, folder):
    """Run the seed example (Ridge alpha sweep) on the local target and say where to look."""
    from .config import RunConfiguration, ScriptRunConfig
    from .workspace import Experiment
    os.makedirs(folder, exist_ok=True)
    for name, text in (("train.py", TRAIN), ("mylib.py", MYLIB)):
        with open(os.path.join(folder, name), "w") as fh:
            fh.write(textwrap.dedent(text).lstrip())
    ws = _workspace(store)
    experiment = Experiment(workspace=ws, name="train-on-local")
    run_config_user_managed = RunConfiguration()
    run_config_user_managed.environment.python.user_managed_dependencies = True
    src = ScriptRunConfig(source_directory=folder, script="train.py", run_config=run_config_user_managed)
    run = experiment.submit(src)
    run.wait_for_completion(show_output=True)
    metrics = run.get_metrics()
    best = min(range(len(metrics["mse"])), key=metrics["mse"].__getitem__)
    models = [f for f in run.get_file_names() if f.startswith("ridge_")]
    click.echo(f"\nbest alpha: {metrics['alpha'][best]:.2f} (mse {metrics['mse'][best]:.2f}); "
               f"{len(models)} model files stored")
    cli = _cli_name()
    click.echo(f"store:   {ws.store.url}\n"
               f"details: {cli} show {run.id}\n"
               f"metrics: {cli} metrics {run.id}\n"
               f"files:   {cli} download {run.id} ./models --prefix ridge_\n"
               f"web:     {cli} ui   then open {run.get_portal_url()}")


def _cli_name() -> str:
    """``runyard`` when it is on PATH, else the path of the one next to this interpreter."""
    import shutil
    import sys
    beside = os.path.join(os.path.dirname(sys.executable), "runyard")
    if shutil.which("runyard") == beside or not os.path.exists(beside):
        return "runyard"
    return os.path.relpath(beside) if not os.path.relpath(beside).startswith("../..") else beside
