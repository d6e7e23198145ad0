"""Models: registry contract, shapes on several grids, each learns a tiny batch; resumable fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from ecdflow.errors import ConfigError, EcdflowError  # noqa: E402
from ecdflow.fit import fit_keras, read_checkpoint_state  # noqa: E402
from ecdflow.models import MODELS, InputStats, get_spec  # noqa: E402

GRID = 8


def _batch(n: int = 16, grid: int = GRID, seed: int = 0) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = {"ecd": rng.gamma(2.0, 0.05, (n, grid, grid, grid, 1)).astype("float32"),
         "magpie": rng.normal(size=(n, 132)).astype("float32")}
    y = (100 + 40 * x["magpie"][:, :1] + 200 * x["ecd"].mean(axis=(1, 2, 3))).astype("float32")
    return x, y


def _stats(y: np.ndarray) -> InputStats:
    return InputStats(ecd_mean=0.1, ecd_var=0.005, y_mean=float(y.mean()), y_std=float(y.std()))


def test_registry_lists_the_paper_models_and_rejects_unknown():
    assert list(MODELS) == ["rf_magpie", "cnn_magpie", "cnn3d", "cnn2d_se", "fusion",
                           "rf_magpie_volume", "gbm_magpie_volume_ecdinv",
                           "rf_magpie_volume_ecdinv"]
    assert MODELS["fusion"].requires == ("cnn_magpie", "cnn2d_se")
    assert not MODELS["rf_magpie"].is_keras
    with pytest.raises(EcdflowError, match="valid: rf_magpie"):
        get_spec("resnet")
    with pytest.raises(ConfigError, match="models.params.cnn3d.nope"):
        MODELS["cnn3d"].config({"nope": 1})


@pytest.mark.parametrize("grid", [8, 16, 60])
def test_shapes_and_paper_sizes(grid):
    for name in ("cnn_magpie", "cnn3d", "cnn2d_se"):
        spec = MODELS[name]
        m = spec.build(spec.config({"width_scale": 1 / 64} if name == "cnn2d_se" else {}), grid)
        x, _ = _batch(2, grid)
        assert m({k: x[k] for k in spec.inputs}).shape == (2, 1)
        assert m.get_layer("penultimate").units == 32
    if grid == 60:  # the paper's 384-wide concatenation of the three 2D branches
        m = MODELS["cnn2d_se"].build(MODELS["cnn2d_se"].config({"width_scale": 1 / 64}), 60)
        concat = [la for la in m.layers if isinstance(la, keras.layers.Concatenate)][0]
        assert concat.output.shape[-1] == 384


def test_2d_views_put_viewing_axis_in_channels():
    from ecdflow.models.cnn2d_se import VIEWS

    cube = np.arange(2 * 3 * 4).reshape(1, 2, 3, 4).astype("float32")  # (batch, x, y, z)
    for axis, (view, perm) in enumerate(VIEWS.items()):
        out = keras.layers.Permute(perm)(cube)
        assert out.shape[-1] == cube.shape[axis + 1], view


@pytest.mark.parametrize("name", ["cnn_magpie", "cnn3d", "cnn2d_se", "fusion"])
def test_keras_model_learns_a_tiny_batch(name):
    keras.utils.set_random_seed(0)
    spec = MODELS[name]
    x, y = _batch()
    params = {"cnn2d_se": {"width_scale": 1 / 16}, "fusion": {"train_parts": True}}.get(name, {})
    cfg = spec.config(params)
    m = spec.build(cfg, GRID, _stats(y))
    # the paper's SGD 1e-3 is too slow for 40 steps: the architecture is what is checked here
    opt = keras.optimizers.Adam(1e-3) if name == "cnn2d_se" else spec.optimizer(cfg, 1)
    m.compile(optimizer=opt, loss="mae")
    feed = {k: x[k] for k in spec.inputs}
    h = m.fit(feed, y, epochs=40, batch_size=16, verbose=0).history["loss"]
    assert h[-1] < 0.7 * h[0], h[::10]


def test_rf_learns_magpie():
    spec = MODELS["rf_magpie"]
    x, y = _batch(40)
    rf = spec.build(spec.config({}), seed=0).fit(x["magpie"], y.ravel())
    assert rf.n_estimators == 50
    assert np.corrcoef(rf.predict(x["magpie"]), y.ravel())[0, 1] > 0.9


def test_sgd_halves_every_10_epochs():
    spec = MODELS["cnn2d_se"]
    opt = spec.optimizer(spec.config({}), steps_per_epoch=3)
    lr = opt.learning_rate if callable(opt.learning_rate) else opt._learning_rate
    assert np.isclose(float(lr(29)), 1e-3) and np.isclose(float(lr(30)), 5e-4)


class _Killed(Exception):
    pass


def _killer(at_epoch: int):
    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == at_epoch:
                raise _Killed

    return Kill()


def test_fit_resumes_after_a_kill_with_optimizer_state(tmp_path):
    keras.utils.set_random_seed(0)
    spec = MODELS["cnn_magpie"]
    x, y = _batch(32)
    train = tf.data.Dataset.from_tensor_slices(({"magpie": x["magpie"]}, y)).batch(8)
    val = train.take(1)

    def build():
        m = spec.build(spec.config({}), GRID, _stats(y))
        m.compile(optimizer=spec.optimizer(spec.config({}), 4), loss="mae")
        return m

    with pytest.raises(_Killed):
        fit_keras(build, train, val, epochs=5, patience=50, ckpt_dir=tmp_path,
                  callbacks=[_killer(2)])
    state = read_checkpoint_state(tmp_path)
    assert state["epoch"] == 2 and len(state["history"]["loss"]) == 2
    saved = keras.saving.load_model(tmp_path / state["model_file"])
    assert int(saved.optimizer.iterations) == 2 * 4  # optimizer state travels with the model

    fit = fit_keras(build, train, val, epochs=5, patience=50, ckpt_dir=tmp_path)
    assert fit.resumed_from == 2 and fit.epochs_run == 5
    assert len(fit.history["loss"]) == 5 and len(fit.history["val_loss"]) == 5
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 5
    assert len(list(tmp_path.glob("epoch-*.keras"))) == 1  # older epochs cleaned up

    again = fit_keras(build, train, val, epochs=5, patience=50, ckpt_dir=tmp_path)
    assert again.resumed_from == 5 and again.epochs_run == 5  # finished: nothing re-trained


def test_early_stopping_state_survives_resume(tmp_path):
    spec = MODELS["cnn_magpie"]
    x, y = _batch(16)
    train = tf.data.Dataset.from_tensor_slices(({"magpie": x["magpie"]}, y)).batch(8)
    val = tf.data.Dataset.from_tensor_slices(({"magpie": x["magpie"][::-1].copy()}, y)).batch(8)
    cfg = spec.config({"learning_rate": 0.3})  # noisy validation loss: patience runs out

    def build():
        keras.utils.set_random_seed(1)
        m = spec.build(cfg, GRID, _stats(y))
        m.compile(optimizer=spec.optimizer(cfg, 2), loss="mae")
        return m

    whole = fit_keras(build, train, val, epochs=30, patience=2, ckpt_dir=tmp_path / "a")
    assert whole.stopped_early and whole.epochs_run < 30
    with pytest.raises(_Killed):
        fit_keras(build, train, val, epochs=30, patience=2, ckpt_dir=tmp_path / "b",
                  callbacks=[_killer(whole.epochs_run - 1)])
    fit = fit_keras(build, train, val, epochs=30, patience=2, ckpt_dir=tmp_path / "b")
    assert fit.stopped_early and fit.epochs_run == whole.epochs_run
    np.testing.assert_allclose(fit.history["val_loss"], whole.history["val_loss"], rtol=1e-4)


def test_constant_training_feature_is_not_divided_by_zero():
    import numpy as np

    from ecdflow.datasets import safe_variance

    mean = np.array([0.0, 1000.0, 5.0])
    var = np.array([0.0, 0.0, 4.0])
    out = safe_variance(mean, var)
    assert out.tolist() == [1.0, 1e6, 4.0]
