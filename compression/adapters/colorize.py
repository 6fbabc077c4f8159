"""colorize for the compression pipeline: both stages as one network, PSNR RGB held out.

Both stages are compressed, as one Keras model (`build_core`): L at the refinement
scale -> stage 1's bin logits -> annealed mean -> upsampled coarse ab -> stage 2 -> ab.
Stage 1 holds about 95% of the weights (its 484-bin output layer and dilated context
block) and so sets the size; stage 2 runs at four times stage 1's pixels and does most
of the arithmetic, so it sets much of the latency. Compressing one of them would leave
the other dominating size or time.

What stays outside the core is what the `Colorizer` does at the photo's resolution:
squeezing the gray photo to about `refine_side`^2 (an antialiased resize, which TFLite
has no builtin for), upsampling the refined ab and joining it with the photo's own L.
The metric runs exactly that around any core, on the held-out colour photos: PSNR RGB
of 8-bit outputs, the family's own evaluation (models/colorize/evaluate.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from compression.adapter import FamilyAdapter, Predict
from models.colorize import chroma
from models.colorize import data as cz_data
from models.colorize import evaluate as cz_evaluate
from models.colorize import family as cz_family
from models.colorize import train as cz_train
from models.colorize.colorizer import Colorizer
from models.colorize.lab import lab_to_rgb, rgb_to_lab
from models.colorize.model import build_chroma_network, build_refinement_network
from models.colorize.signatures import ColorizeModule
from models.superres import data as photos

CHROMA = "chroma_network"  # the stages' model names (models/colorize/model.py)
REFINEMENT = "refinement_network"
WARMUP_SIDE = 64


class Stage1Lightness(keras.layers.Layer):
    """L at the refinement scale -> L of the gray image averaged 2x2 in RGB: the input
    the `Colorizer` gives stage 1 (its gray image is L with a = b = 0)."""

    def call(self, lightness: tf.Tensor) -> tf.Tensor:
        zero = tf.zeros_like(lightness)
        gray = lab_to_rgb(tf.concat([lightness, zero, zero], axis=-1))
        return rgb_to_lab(tf.nn.avg_pool2d(gray, 2, 2, "VALID"))[..., :1]


class AnnealedMean(keras.layers.Layer):
    """Bin logits -> ab: the deterministic decoding (`chroma.annealed_mean`)."""

    def __init__(self, temperature: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, logits: tf.Tensor) -> tf.Tensor:
        return chroma.annealed_mean(logits, self.temperature)

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}


class ResizeLike(keras.layers.Layer):
    """Bilinear resize of the first input to the height and width of the second."""

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        image, like = inputs
        return tf.image.resize(image, tf.shape(like)[1:3], "bilinear")


def build_core(
    chroma_network: keras.Model, refinement_network: keras.Model, temperature: float
) -> keras.Model:
    """L [N, H, W, 1] (H, W multiples of 16) -> refined ab [N, H, W, 2]: both stages and
    the decoding between them, as `Colorizer.colorize` runs them."""
    lightness = keras.Input((None, None, 1), name="lightness")
    logits = chroma_network(Stage1Lightness(name="stage1_lightness")(lightness))
    low_ab = AnnealedMean(temperature, name="annealed_mean")(logits)
    coarse_ab = ResizeLike(name="coarse_ab")([low_ab, lightness])
    ab = refinement_network([lightness, coarse_ab])
    return keras.Model(lightness, ab, name="colorize_core")


class Adapter(FamilyAdapter):
    name = "colorize"
    metric = "PSNR RGB (dB)"
    higher_is_better = True
    task = "regression"  # the core outputs ab; the teacher's ab are the soft targets
    tflite_signature = "predict_tensor"  # added to the SavedModel by `CoreModule`
    prunable_layers = ()  # the stages are nested models: prune/qat do not reach inside

    def __init__(self, workdir) -> None:
        super().__init__(workdir)
        self._trained: cz_train.Trained | None = None
        self._splits: tuple[list, list] | None = None  # (train, held-out) colour photos
        self._heldout: list[tuple[tf.Tensor, np.ndarray]] | None = None
        self._mean_chroma_psnr: float | None = None

    @property
    def trained(self) -> cz_train.Trained:
        if self._trained is None:
            self._trained = cz_train.load_trained(self.workdir)
        return self._trained

    def load_model(self) -> keras.Model:
        colorizer = self.trained.colorizer
        return build_core(
            colorizer.chroma_network,
            colorizer.refinement_network,
            colorizer.decode_temperature,
        )

    def train_batches(self, batch_size: int | None = None, seed: int = 0) -> tf.data.Dataset:
        """(L [B, S, S, 1], true ab [B, S, S, 2]) of whole training crops at the
        refinement scale S, the family's crops."""
        config = self.trained.config
        train, _ = self._photo_splits()
        batches = cz_data.training_batches(
            [image for _, image in train],
            config.refine_side,
            config.refine_side,  # the whole crop: the core sees what stage 1 sees
            batch_size or config.batch_size,
            seed,
        )
        return batches.map(lambda batch: (batch["refine_l"], batch["refine_ab"]))

    def loss(self) -> keras.losses.Loss:
        return keras.losses.MeanSquaredError()  # on ab: the error PSNR measures

    def evaluate(self, predict: Predict) -> float:
        """Mean PSNR RGB over the held-out photos of `predict` as the core."""
        scores = []
        for truth, core_input in self._heldout_photos():
            rgb = self.colorize(predict, truth, core_input)
            scores.append(cz_evaluate.psnr(tf.round(rgb * 255.0) / 255.0, truth))
        return float(np.mean(scores))

    def colorize(self, predict: Predict, rgb: tf.Tensor, core_input: np.ndarray) -> tf.Tensor:
        """RGB [H, W, 3] in [0, 1]: the photo's own L with the ab `predict` (a core)
        makes from `core_input`, upsampled, as `Colorizer.colorize` joins them."""
        lightness = rgb_to_lab(rgb)[..., :1]
        ab = tf.image.resize(predict(core_input), tf.shape(lightness)[:2], "bilinear")[0]
        return lab_to_rgb(tf.concat([lightness, ab], axis=-1))

    def baseline_metric(self) -> tuple[str, float]:
        """The training photos' mean chroma painted everywhere."""
        if self._mean_chroma_psnr is None:
            scores = []
            for truth, _ in self._heldout_photos():
                painted = cz_evaluate.with_chroma(truth, self.trained.mean_ab)
                scores.append(cz_evaluate.psnr(tf.round(painted * 255.0) / 255.0, truth))
            self._mean_chroma_psnr = float(np.mean(scores))
        return "mean chroma", self._mean_chroma_psnr

    def custom_objects(self) -> Mapping[str, type]:
        return {
            "Stage1Lightness": Stage1Lightness,
            "AnnealedMean": AnnealedMean,
            "ResizeLike": ResizeLike,
        }

    def build_student(
        self,
        teacher: keras.Model,
        chroma_filters: tuple[int, int, int] = (8, 16, 32),
        refine_filters: int = 8,
    ) -> keras.Model:
        """Both stages narrower, decoded at the trained model's temperature."""
        config = self.trained.config
        return build_core(
            build_chroma_network(tuple(chroma_filters), config.chroma_dropout),
            build_refinement_network(refine_filters),
            config.decode_temperature,
        )

    def tflite_module(self, model: keras.Model) -> tf.Module:
        return CoreTensorModule(model)

    def serving_module(self, model: keras.Model) -> tuple[tf.Module, dict]:
        config = self.trained.config
        colorizer = Colorizer(
            model.get_layer(CHROMA),
            model.get_layer(REFINEMENT),
            config.refine_side,
            model.get_layer("annealed_mean").temperature,
            config.sample_correlation_px,
        )
        module = CoreModule(colorizer, model)
        return module, module.signatures()

    def warmup_inputs(self, tflite: bool) -> tuple[str, dict]:
        request = cz_family.warmup_inputs()
        if not tflite:
            return "serving_default", request
        photo = Image.fromarray(photos.SKIMAGE_PHOTOS["coffee"]())
        small = np.asarray(photo.resize((WARMUP_SIDE, WARMUP_SIDE)), np.float32) / 255.0
        return self.tflite_signature, {"lightness": self.core_input(small)}

    def _photo_splits(self) -> tuple[list, list]:
        """The family's (train, held-out) colour photos, decoded once per run."""
        if self._splits is None:
            roots = photos.DEBIAN_ROOTS if self.trained.config.debian_photos else None
            self._splits = cz_data.colour_photos(roots)
        return self._splits

    def _heldout_photos(self) -> list[tuple[tf.Tensor, np.ndarray]]:
        """Per held-out colour photo: RGB in [0, 1] and the core's input."""
        if self._heldout is None:
            _, heldout = self._photo_splits()
            rgbs = [tf.convert_to_tensor(image, tf.float32) / 255.0 for _, image in heldout]
            self._heldout = [(rgb, self.core_input(rgb)) for rgb in rgbs]
        return self._heldout

    def core_input(self, rgb: tf.Tensor | np.ndarray) -> np.ndarray:
        """[1, h, w, 1]: an RGB photo's L squeezed to the refinement scale, as the
        `Colorizer` squeezes it (its gray copy, antialiased)."""
        rgb = tf.convert_to_tensor(rgb, tf.float32)
        lightness = rgb_to_lab(rgb)[..., :1]
        gray = lab_to_rgb(tf.concat([lightness, tf.zeros_like(rgb[..., :2])], axis=-1))
        size = self.trained.colorizer.refine_size(tf.shape(rgb)[0], tf.shape(rgb)[1])
        small = tf.image.resize(gray[None], size, "bilinear", antialias=True)
        return rgb_to_lab(tf.clip_by_value(small, 0.0, 1.0))[..., :1].numpy()


class CoreTensorModule(tf.Module):
    """The core on float tensors: the TFLite converter's input (and the SavedModel's
    `predict_tensor`)."""

    def __init__(self, core: keras.Model) -> None:
        super().__init__(name="colorize_tensor")
        self.core = core

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, "lightness")])
    def predict_tensor(self, lightness: tf.Tensor) -> dict[str, tf.Tensor]:
        """CIELAB L [N, H, W, 1] in [0, 100] (H, W multiples of 16) -> ab [N, H, W, 2]."""
        return {"ab": self.core(lightness, training=False)}


class CoreModule(ColorizeModule):
    """The family's contract (`serving_default`, `samples`) plus the core's
    `predict_tensor`, the signature the release's model.tflite has."""

    def __init__(self, colorizer: Colorizer, core: keras.Model) -> None:
        super().__init__(colorizer)
        self.tensor = CoreTensorModule(core)

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        return {
            **super().signatures(),
            "predict_tensor": self.tensor.predict_tensor.get_concrete_function(),
        }
