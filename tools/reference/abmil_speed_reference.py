#!/usr/bin/python3
"""PyTorch side of `Histo.Bench mil`: one epoch of ABMIL training (paper sizes L=500, D=128; AdamW; one bag per
step) on the same bags Histo trains on. Prints one JSON line with the seconds per epoch (after a warm-up epoch).
Usage: abmil_speed_reference.py BAGS.npy SIZES.npy LABELS.npy THREADS"""
import json, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

bags, sizes, labels, threads = np.load(sys.argv[1]), np.load(sys.argv[2]), np.load(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)


class ABMIL(nn.Module):
    def __init__(self, d_in, classes, hidden=500, att=128, dropout=0.25):
        super().__init__()
        self.feature = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.attention_V = nn.Linear(hidden, att)
        self.attention_w = nn.Linear(att, 1)
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, x):
        h = self.feature(x)
        a = torch.softmax(self.attention_w(torch.tanh(self.attention_V(h))).squeeze(1), 0)
        return self.classifier(a @ h)


x = torch.from_numpy(bags)
offsets = np.concatenate([[0], np.cumsum(sizes)])
model = ABMIL(x.shape[1], int(labels.max()) + 1)
opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-4)
model.train()


def epoch():
    for i in range(len(sizes)):
        opt.zero_grad()
        logits = model(x[offsets[i]:offsets[i + 1]])
        loss = F.cross_entropy(logits.unsqueeze(0), torch.tensor([int(labels[i])]))
        loss.backward()
        opt.step()


epoch()
t = time.perf_counter()
epoch()
print(json.dumps({'seconds_per_epoch': time.perf_counter() - t, 'torch': torch.__version__}))
