"""Automatic colourization in two stages, after PixColor (Guadarrama et al., 2017).

Stage 1 predicts a distribution over quantized ab (CIELAB chroma) at low resolution from
the gray photo, so colourings can be sampled (with a temperature) as well as decoded
deterministically; stage 2 refines the low-resolution colour to full resolution, guided
by the gray photo. Modules: `lab` (sRGB <-> CIELAB as TF ops), `chroma` (ab bins,
soft-encoding, annealed mean, sampling), `model` (the two Keras networks), `colorizer`
(whole-photo inference), `data` (colour photos, training batches), `train` (presets,
checkpoint), `evaluate` (PSNR/SSIM/colourfulness vs the gray and mean-chroma baselines),
`signatures` (the SavedModel contract), `images` and `grid` (PNGs for people), `family`
(the CLI/demo face), `commands` and `runner` (`tfstack colorize`).
"""
