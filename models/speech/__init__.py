"""Speech recognition: a conv + bidirectional GRU CTC model on noisy synthetic speech.

Modules: `corpus` (sentences and their split), `synth` (espeak-ng and flite voices),
`noise` (sox noise, mixing at an SNR), `audio` (WAV in and out of NumPy), `data`
(the cache of utterances, noisy tf.data batches), `features` (WAV decoding and
log-mel features in graph), `alphabet`, `model` (the Keras builder), `decode` (greedy
and beam-search CTC decoding to strings), `recognize` (waveforms -> transcripts),
`train` (presets, training, checkpoint), `evaluate` (WER and CER vs a baseline, per
SNR), `signatures` (the SavedModel serving contract), `demo` (`tfstack demo`) and
`commands` (`tfstack speech voices|say`).
"""
