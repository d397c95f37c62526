"""The BERT text tower: in-graph WordPiece tokenization, a BERT encoder, mean pooling.

Modules, one public concept each:

- `checkpoint`: `BertConfig` and `load_checkpoint` (HuggingFace `config.json` +
  `model.safetensors` + `vocab.txt`), `default_checkpoint_dir` (all-MiniLM-L6-v2).
- `tokenizer`: `BertTokenization`, strings -> `input_ids` / `attention_mask`.
- `transformer`: `BertTransformerLayer`, one post-LayerNorm transformer block.
- `encoder`: `BertEncoder`, token ids -> sequence output, with checkpoint loading and the
  training modes (`frozen`, `finetune_top_layers`, `full`).
- `text_tower`: `BertTextTower`, strings -> pooled (optionally projected) vectors.
- `export`: `export_text_encoder`, the frozen encoder as a SavedModel for `beam_jobs.embed_text`.
- `tiny`: `write_tiny_bert`, a small random checkpoint in the same layout, for tests.

Importing this package loads nothing; import the modules you need.
"""
