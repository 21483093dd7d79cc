"""An offline CLIP tokenizer: the OpenAI CLIP BPE vocab bundled with open_clip as a transformers CLIPTokenizer.

The vocab (49408 entries) is the one of ViT-H/14 and ViT-bigG/14, so the ids equal
`open_clip.get_tokenizer("ViT-bigG-14")` except for padding (transformers pads with <|endoftext|>, 49407).
No file is written and nothing is downloaded.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

from transformers import CLIPTokenizer

CLIP_VOCAB_SIZE = 49408
CLIP_BOS_ID = 49406
CLIP_EOS_ID = 49407
_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
# The merges used by CLIP: the file's first line is a header, then 49408 - 256*2 - 2 merges.
_N_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2


def byte_unicode_table() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE, in CLIP's vocab order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def _bpe_path() -> Path:
    """Locate open_clip's vocab file without importing open_clip (its import pulls in torch and timm)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip_torch is not installed; it ships the CLIP vocab: pip install open_clip_torch")
    path = Path(next(iter(spec.submodule_search_locations))) / _BPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"CLIP vocab not found at {path}; reinstall open_clip_torch")
    return path


@functools.cache
def _clip_bpe() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(vocab tokens in id order, merge pairs), parsed once per process from open_clip's file."""
    with gzip.open(_bpe_path(), "rt", encoding="utf-8") as text:
        lines = text.read().split("\n")
    merges = tuple(tuple(line.split()) for line in lines[1 : 1 + _N_MERGES])
    if len(merges) != _N_MERGES:
        raise ValueError(f"open_clip's {_BPE_FILE} has {len(merges)} merges, expected {_N_MERGES}; reinstall open_clip_torch")
    byte_tokens = byte_unicode_table()
    tokens = (
        *byte_tokens,
        *(token + "</w>" for token in byte_tokens),
        *("".join(merge) for merge in merges),
        "<|startoftext|>",
        "<|endoftext|>",
    )
    return tokens, merges


def clip_tokenizer(max_length: int = 77) -> CLIPTokenizer:
    """A fresh transformers CLIPTokenizer over the real CLIP vocab (49408 ids, bos 49406, eos = pad 49407)."""
    tokens, merges = _clip_bpe()
    vocab = {token: index for index, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=list(merges), model_max_length=max_length)
