"""TinyEdit: the embedded audio-editing LM (edit pairs, fine-tuning from TinyCosy, editing,
evaluation). See `python -m interp.edit --help`."""
