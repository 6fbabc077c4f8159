"""English->German translation: stacked-LSTM encoder-decoder with Luong attention.

Modules: `corpus` (real offline sentence pairs: pip catalogs and CLDR names, Debian's
Ding sentences and catalogs; cleaning and the held-out split), `vocab` (one
SentencePiece vocabulary for both languages), `model` (the Keras model), `decode`
(greedy and beam search as graphs), `train` (presets, training, checkpoint), `evaluate`
(sacreBLEU and chrF against copying the source), `signatures` (the SavedModel serving
contract: text in, translation out), `family` (the CLI and demo face) and `commands`
(`tfstack nmt corpus|translate`).
"""
