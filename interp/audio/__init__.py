"""Audio: the speech codec (wav ⇄ 25 Hz tokens), features, pitch, voice fingerprints, wav I/O."""

SAMPLE_RATE = 16_000  # Hz: the corpus, the codec, the instruments and every wav the stages write
