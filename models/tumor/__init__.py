"""Tumor: metastasis detection on whole slides (Liu et al. 2017, arXiv 1703.02442).

A small patch classifier is trained on synthetic slides built on real H&E tissue, then
scanned over a slide to give a probability heatmap, lesion detections and a slide score,
scored with the Camelyon16 metrics (FROC, slide-level ROC AUC) against a darkness
threshold detector.

Modules: `sources` (the real H&E images), `stain` (HED optical densities), `tissue`
(Otsu tissue mask), `slide_io` (OpenSlide reading, pyramidal TIFF writing), `painting`
(cells and artefacts painted in stain space), `slides` (the slide generator), `data`
(training patches), `model`, `train` (hard-negative mining), `scan` (heatmaps and
detections), `scorers` (the model in process or over gRPC), `baseline`, `evaluate` (FROC,
AUC), `overlay` (heatmap PNG), `signatures`, `family` and `commands` (`tfstack tumor ...`).
"""
