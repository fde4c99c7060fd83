#!/usr/bin/python3
"""PyTorch reference of Histo's attention MIL (src/Histo/Mil/AttentionMil.cs; Ilse et al. 2018), with the same
module names, formula weights and a formula bag: logits and attention in eval mode, then one AdamW step
on the cross-entropy of one bag, for plain and gated attention. Writes golden/abmil-golden.json.
Usage: abmil_reference.py OUT_DIR"""
import json, os, sys
import torch, torch.nn as nn, torch.nn.functional as F

torch.set_default_dtype(torch.float32)
D_IN, HIDDEN, ATT, CLASSES, N = 24, 16, 8, 3, 37


class ABMIL(nn.Module):
    def __init__(self, gated):
        super().__init__()
        self.feature = nn.Sequential(nn.Linear(D_IN, HIDDEN), nn.ReLU(), nn.Dropout(0.0))
        self.attention_V = nn.Linear(HIDDEN, ATT)
        self.attention_U = nn.Linear(HIDDEN, ATT) if gated else None
        self.attention_w = nn.Linear(ATT, 1)
        self.classifier = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        h = self.feature(x)
        v = torch.tanh(self.attention_V(h))
        if self.attention_U is not None:
            v = v * torch.sigmoid(self.attention_U(h))
        a = torch.softmax(self.attention_w(v).squeeze(1), 0)
        return self.classifier(a @ h), a


def fill(model):
    sd = model.state_dict()
    for k, name in enumerate(sorted(sd)):
        j = torch.arange(sd[name].numel(), dtype=torch.float64)
        sd[name].copy_((0.3 * torch.sin(0.37 * j + 1.3 * k)).reshape(sd[name].shape))


def main(out):
    bag = torch.sin(0.05 * torch.arange(N * D_IN, dtype=torch.float64)).reshape(N, D_IN).float()
    golden = {}
    for gated in (False, True):
        model = ABMIL(gated)
        fill(model)
        model.eval()
        with torch.no_grad():
            logits, attention = model(bag)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        opt.zero_grad()
        out_logits, _ = model(bag)
        loss = F.cross_entropy(out_logits.unsqueeze(0), torch.tensor([2]))
        loss.backward()
        opt.step()
        golden['gated' if gated else 'plain'] = {
            'logits': logits.tolist(), 'attention': attention.tolist(), 'loss': loss.item(),
            'updated': {k: v.flatten().tolist() for k, v in model.state_dict().items()}}
    with open(os.path.join(out, 'abmil-golden.json'), 'w') as f:
        json.dump(golden, f)
    print('wrote', out)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'golden')
