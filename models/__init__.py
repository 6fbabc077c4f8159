"""Model families: one subpackage each.

Every family has `model.py` (Keras builder), `data.py` (tf.data from real
data), `train.py`, `evaluate.py` (task metric and a non-learned baseline),
`signatures.py` (the serving contract) and `family.py`, the uniform face the
CLI and the demo use:

    PRESETS: dict[str, TrainConfig]
    train(workdir, preset, progress, steps) -> dict          (summary)
    evaluate(workdir) -> Evaluation                            (metrics + table)
    serving_module(workdir) -> tuple[tf.Module, dict]          (module, signatures)
    request_inputs(paths) -> dict[str, list[bytes]]            (files -> Predict inputs)
    save_outputs(outputs, paths, out_dir) -> list[Path]        (Predict outputs -> files)
    warmup_inputs() -> dict[str, list[bytes]]                  (sample request for warmup)
    serve_demo(client, workdir) -> ServedResult                (`tfstack demo`: call the
                                                                served model on held-out
                                                                data, score vs baseline)
    DEMO_PRESET: str                                           (preset `tfstack demo` trains)
"""

import tfstack  # noqa: F401  (configures TensorFlow before any family imports it)

FAMILIES = ("superres", "tumor", "speech", "nmt", "colorize")
