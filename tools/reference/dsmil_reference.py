#!/usr/bin/python3
"""PyTorch reference of DSMIL (Li, Li, Eliceiri, CVPR 2021) written from the authors' code, binli123/dsmil-wsi at its
2024 revision (dsmil.py: FCLayer, BClassifier, MILNet; train_tcga.py: train() and init_model()), with its defaults:
non_linearity=1 (q = Linear-ReLU-Linear-Tanh), passing_v=False (v = nn.Identity), dropout_node=0, dropout_patch=0.
Training loss per bag = 0.5 * criterion(bag prediction) + 0.5 * criterion(max over instances of the instance
predictions), as train_tcga.py's train(); the criterion here is cross-entropy on the class index (Histo's softmax
head) where the authors use BCEWithLogitsLoss on one-hot labels. Prediction: the paper's bag score, the mean of
the two streams, (max instance logits + bag logits) / 2.

The model is built with the authors' module structure; its parameters are filled with formula weights under
Histo's names (src/Histo/Mil/DsMil.cs, mapped in HISTO_NAMES), as abmil_reference.py does. Writes
golden/dsmil-golden.json: the bag-stream, max-instance and combined logits, the attention A [N, C], the loss and
every parameter after one AdamW step. Usage: dsmil_reference.py OUT_DIR"""
import json, os, sys
import torch, torch.nn as nn, torch.nn.functional as F

torch.set_default_dtype(torch.float32)
D_IN, CLASSES, N, LABEL = 24, 3, 37, 2


class FCLayer(nn.Module):  # dsmil.py: the instance classifier
    def __init__(self, in_size, out_size=1):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(in_size, out_size))

    def forward(self, feats):
        return feats, self.fc(feats)


class BClassifier(nn.Module):  # dsmil.py: the bag classifier, defaults nonlinear=True, passing_v=False
    def __init__(self, input_size, output_class, dropout_v=0.0, nonlinear=True, passing_v=False):
        super().__init__()
        if nonlinear:
            self.q = nn.Sequential(nn.Linear(input_size, 128), nn.ReLU(), nn.Linear(128, 128), nn.Tanh())
        else:
            self.q = nn.Linear(input_size, 128)
        if passing_v:
            self.v = nn.Sequential(nn.Dropout(dropout_v), nn.Linear(input_size, input_size), nn.ReLU())
        else:
            self.v = nn.Identity()
        self.fcc = nn.Conv1d(output_class, output_class, kernel_size=input_size)

    def forward(self, feats, c):
        V = self.v(feats)
        Q = self.q(feats).view(feats.shape[0], -1)
        _, m_indices = torch.sort(c, 0, descending=True)  # critical instance of each class
        m_feats = torch.index_select(feats, dim=0, index=m_indices[0, :])
        q_max = self.q(m_feats)
        A = torch.mm(Q, q_max.transpose(0, 1))
        A = F.softmax(A / torch.sqrt(torch.tensor(Q.shape[1], dtype=torch.float32)), 0)
        B = torch.mm(A.transpose(0, 1), V)
        B = B.view(1, B.shape[0], B.shape[1])
        C = self.fcc(B).view(1, -1)
        return C, A, B


class MILNet(nn.Module):
    def __init__(self, i_classifier, b_classifier):
        super().__init__()
        self.i_classifier = i_classifier
        self.b_classifier = b_classifier

    def forward(self, x):
        feats, classes = self.i_classifier(x)
        prediction_bag, A, B = self.b_classifier(feats, classes)
        return classes, prediction_bag, A, B


# The authors' parameter names -> Histo's (DsMil.cs).
HISTO_NAMES = {
    'i_classifier.fc.0.weight': 'i_classifier.weight', 'i_classifier.fc.0.bias': 'i_classifier.bias',
    'b_classifier.q.0.weight': 'q.0.weight', 'b_classifier.q.0.bias': 'q.0.bias',
    'b_classifier.q.2.weight': 'q.2.weight', 'b_classifier.q.2.bias': 'q.2.bias',
    'b_classifier.fcc.weight': 'fcc.weight', 'b_classifier.fcc.bias': 'fcc.bias',
}


def fill(model):
    """abmil_reference.py's formula: the k-th parameter in ordinal order of Histo's names gets 0.3 sin(0.37 j + 1.3 k)."""
    sd = model.state_dict()
    assert sorted(sd) == sorted(HISTO_NAMES), sorted(sd)
    for k, histo in enumerate(sorted(HISTO_NAMES.values())):
        name = next(p for p, h in HISTO_NAMES.items() if h == histo)
        j = torch.arange(sd[name].numel(), dtype=torch.float64)
        sd[name].copy_((0.3 * torch.sin(0.37 * j + 1.3 * k)).reshape(sd[name].shape))


def main(out):
    bag = torch.sin(0.05 * torch.arange(N * D_IN, dtype=torch.float64)).reshape(N, D_IN).float()
    milnet = MILNet(FCLayer(D_IN, CLASSES), BClassifier(D_IN, CLASSES))
    fill(milnet)
    milnet.eval()
    with torch.no_grad():
        ins, bag_logits, A, _ = milnet(bag)
        max_logits, _ = torch.max(ins, 0)
        logits = (max_logits + bag_logits.view(-1)) / 2  # the paper's bag score: mean of the two streams
        critical = torch.argmax(ins, 0)
    milnet.train()
    opt = torch.optim.AdamW(milnet.parameters(), lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    opt.zero_grad()
    ins_prediction, bag_prediction, _, _ = milnet(bag)
    max_prediction, _ = torch.max(ins_prediction, 0)
    label = torch.tensor([LABEL])
    bag_loss = F.cross_entropy(bag_prediction.view(1, -1), label)
    max_loss = F.cross_entropy(max_prediction.view(1, -1), label)
    loss = 0.5 * bag_loss + 0.5 * max_loss  # train_tcga.py's train()
    loss.backward()
    opt.step()
    golden = {
        'label': LABEL, 'bag_logits': bag_logits.view(-1).tolist(), 'max_logits': max_logits.tolist(),
        'logits': logits.tolist(), 'attention': A.tolist(), 'critical': critical.tolist(),
        'bag_loss': bag_loss.item(), 'max_loss': max_loss.item(), 'loss': loss.item(),
        'updated': {HISTO_NAMES[k]: v.flatten().tolist() for k, v in milnet.state_dict().items()}}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'dsmil-golden.json'), 'w') as f:
        json.dump(golden, f)
    print('wrote', out, 'critical instances', critical.tolist(), 'loss', loss.item())


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'golden')
