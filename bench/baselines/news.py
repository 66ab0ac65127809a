"""The course's BERT news classifier (course notes 004, line 5307), on AG News from scratch.

The course's: `BertForSequenceClassification` (pooled [CLS], dropout, linear head), inputs
padded to `max_length` with an attention mask, AdamW with weight decay 0.01 on all but biases and
LayerNorm weights (eps 1e-8), a plain epoch/batch loop (no warmup, no schedule, no clipping), and
its loss: `BCEWithLogitsLoss` on one-hot labels; accuracy by argmax.
Chosen, because the course fine-tunes a pretrained model that is not on this machine: the zoo's
network and tokenizer (`BertConfig` of `configs/bert_news.yaml`: 2 layers, 128 wide, 2 heads, 128
positions; a WordPiece tokenizer of 8,000 trained on the training texts with the zoo's helper),
the learning rate the zoo uses from scratch (5e-4; the course's `args.learning_rate` is a
fine-tuning one) and batch 32 (the course gives none; Google's BERT `run_classifier` default; 16
scored the same here). Same rows as the zoo: the datamodule's reader (title [SEP] description,
1-based labels) and its seeded, stratified 10% hold-out (400 rows).
"""

from __future__ import annotations

import time

import torch

TEXT_COLUMNS = ["title", "description"]
MAX_LENGTH, BATCH_SIZE, LR, VOCAB = 128, 32, 5e-4, 8000


def baseline(root: str, epochs: int, seed: int = 0) -> tuple[list[float], float]:
    """The course's BERT loop on the zoo's AG News split: val accuracy per epoch, wall seconds."""
    from baselines.course_adamw import course_adamw
    from transformers import BertConfig, BertForSequenceClassification

    from datamodules.news import NewsDataModule
    from datamodules.subwords import train_tokenizer

    torch.manual_seed(seed)  # the split stays the datamodule's (its own seed 0)
    start = time.perf_counter()  # reading, tokenizer training and tokenising count, as in the zoo
    data = NewsDataModule(root=root, text_column=TEXT_COLUMNS, max_length=MAX_LENGTH, cache=False)
    splits, names, _ = data._read()  # the zoo's reader and seeded hold-out
    tokenizer = train_tokenizer(splits["train"].texts, VOCAB, "wordpiece")

    def features(split: str) -> torch.utils.data.TensorDataset:
        # The course's get_features: ids, attention mask, padded to max_length.
        encoded = tokenizer(
            splits[split].texts,
            truncation=True,
            max_length=MAX_LENGTH,
            padding="max_length",
            return_tensors="pt",
        )
        labels = torch.tensor(splits[split].labels)
        return torch.utils.data.TensorDataset(
            encoded["input_ids"], encoded["attention_mask"], labels
        )

    train, val = features("train"), features("val")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=512,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
    )
    model = BertForSequenceClassification(config)
    optimizer = course_adamw(model, ["bias", "LayerNorm.bias", "LayerNorm.weight"], 0.01, LR)
    loss_fct = torch.nn.BCEWithLogitsLoss()
    train_loader = torch.utils.data.DataLoader(train, batch_size=BATCH_SIZE, shuffle=True)
    val_loader = torch.utils.data.DataLoader(val, batch_size=BATCH_SIZE)
    scores = []
    for _ in range(epochs):
        model.train()
        for ids, mask, labels in train_loader:
            logits = model(input_ids=ids, attention_mask=mask).logits  # (B, classes)
            one_hot = torch.nn.functional.one_hot(labels, len(names)).float()
            loss = loss_fct(logits, one_hot)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
        with torch.no_grad():
            right = sum(
                (model(input_ids=i, attention_mask=m).logits.argmax(-1) == y).sum().item()
                for i, m, y in val_loader
            )
        scores.append(right / len(val))
        elapsed = time.perf_counter() - start
        print(
            f"baseline epoch {len(scores)}: val acc {scores[-1]:.3f}, {elapsed:.0f} s", flush=True
        )
    return scores, time.perf_counter() - start
