"""The course's BART fine-tuning (course notes 004, line 5490), on an XSum sample from scratch.

The course's: `BartForConditionalGeneration`; documents and summaries padded to `max_length`
(`pad_to_max_length=True`), decoder inputs by `shift_tokens_right`, padded labels set to -100;
`Seq2SeqTrainer` with batch 1, `warmup_steps=500`, `weight_decay=0.01`, written out as the
plain loop it runs by default (AdamW, no decay on biases and LayerNorm weights, eps 1e-8, linear
warmup then linear decay to 0 per step, gradient norm clipped at 1.0, shuffled); generation as in
its `generate(..., max_length=130, early_stopping=True)` with the settings its model
(`facebook/bart-large-cnn`) carries: 4 beams, length penalty 2.0, no repeated trigram.
Chosen, because no pretrained model is on this machine: the zoo's network and tokenizer (the
`BartConfig` of `configs/bart_summarization.yaml`: 2 + 2 layers, 128 wide, 4 heads, 128
positions; a byte-level BPE of 2,000 trained on the training documents and summaries with the
zoo's helper), so padding is to 128 and `max_length` 130 is capped at the 128 positions;
summaries cut to the zoo's 32 tokens, so both train on the same targets; the zoo's from-scratch
LR 1e-3 (the Trainer's default 5e-5 is a fine-tuning one); bart-large-cnn's `min_length` 56 is
left out (it is for CNN/DailyMail's multi-sentence highlights: it would force XSum's
one-sentence summaries to twice their length). Same rows and metric as the zoo: the
datamodule's reader and seeded hold-out; ROUGE-1 F (`tasks.rouge.rouge_metric`, Porter stemmer)
of the first `generate_val_batches` x `batch_size` = 2 x 16 validation rows in order (the rows
the zoo's config generates on), against the references as the zoo decodes them (cut to 32
tokens).
"""

from __future__ import annotations

import time

import torch

SOURCE_LENGTH, TARGET_LENGTH, VOCAB = 128, 32, 2000
BATCH_SIZE, LR, WARMUP_STEPS, WEIGHT_DECAY = 1, 1e-3, 500, 0.01
GENERATE_ROWS = 2 * 16  # the zoo config's generate_val_batches x the datamodule's batch_size


def baseline(root: str, epochs: int, seed: int = 0) -> tuple[list[float], float]:
    """The course's BART fine-tuning on the zoo's split: val ROUGE-1 per epoch, wall seconds."""
    from baselines.course_adamw import course_adamw
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        get_linear_schedule_with_warmup,
    )
    from transformers.models.bart.modeling_bart import shift_tokens_right

    from datamodules.subwords import train_tokenizer
    from datamodules.summarization import SummarizationDataModule
    from tasks.rouge import rouge_metric

    torch.manual_seed(seed)  # the split stays the datamodule's (its own seed 0)
    start = time.perf_counter()  # reading, tokenizer training and tokenising count, as in the zoo
    data = SummarizationDataModule(
        root=root,
        max_source_length=SOURCE_LENGTH,
        max_target_length=TARGET_LENGTH,
        tokenizer_vocab_size=VOCAB,
        cache=False,
    )
    splits, _ = data._read()  # the zoo's reader and seeded hold-out
    train_texts = splits["train"].texts + splits["train"].labels
    tokenizer = train_tokenizer(train_texts, VOCAB, "byte_bpe")
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=128,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=512,
        decoder_ffn_dim=512,
        dropout=0.1,
        max_position_embeddings=SOURCE_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )

    def convert_to_features(split: str) -> torch.utils.data.TensorDataset:
        # The course's convert_to_features: both sides padded to max_length.
        pad = config.pad_token_id
        inputs = tokenizer(
            splits[split].texts,
            padding="max_length",
            max_length=SOURCE_LENGTH,
            truncation=True,
            return_tensors="pt",
        )
        targets = tokenizer(splits[split].labels, max_length=TARGET_LENGTH, truncation=True)[
            "input_ids"
        ]
        labels = torch.tensor([t + [pad] * (SOURCE_LENGTH - len(t)) for t in targets])
        decoder_input_ids = shift_tokens_right(labels, pad, config.decoder_start_token_id)
        labels[labels == pad] = -100
        return torch.utils.data.TensorDataset(
            inputs["input_ids"], inputs["attention_mask"], decoder_input_ids, labels
        )

    train = convert_to_features("train")
    val = convert_to_features("val")
    model = BartForConditionalGeneration(config)
    optimizer = course_adamw(
        model, ["bias", "layer_norm.weight", "layernorm_embedding.weight"], WEIGHT_DECAY, LR
    )
    loader = torch.utils.data.DataLoader(train, batch_size=BATCH_SIZE, shuffle=True)
    total = epochs * len(loader)
    schedule = get_linear_schedule_with_warmup(optimizer, WARMUP_STEPS, total)
    rows = range(min(GENERATE_ROWS, len(val)))
    scores = []
    for _ in range(epochs):
        model.train()
        for ids, mask, decoder_ids, labels in loader:
            loss = model(
                input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, labels=labels
            ).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        model.eval()
        rouge = rouge_metric()
        with torch.no_grad():
            for row in rows:
                ids, mask, _, labels = val[row]
                summary_ids = model.generate(
                    ids[None],
                    attention_mask=mask[None],
                    max_length=min(130, SOURCE_LENGTH),
                    early_stopping=True,
                    num_beams=4,
                    length_penalty=2.0,
                    no_repeat_ngram_size=3,
                )
                summary = tokenizer.decode(summary_ids[0], skip_special_tokens=True).strip()
                reference = tokenizer.decode(labels[labels != -100], skip_special_tokens=True)
                rouge.update([summary], [reference.strip()])
        scores.append(float(rouge.compute()["rouge1_fmeasure"]))
        elapsed = time.perf_counter() - start
        print(
            f"baseline epoch {len(scores)}: val rouge1 {scores[-1]:.3f}, {elapsed:.0f} s",
            flush=True,
        )
    return scores, time.perf_counter() - start
