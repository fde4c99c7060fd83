#!/usr/bin/python3
"""PyTorch reference of a whole DINO iteration (facebookresearch/dino main_dino.py train_one_epoch: multi-crop
forward grouped by resolution, DINOLoss, backward, per-parameter gradient clipping, cancel_gradients_last_layer,
AdamW with two parameter groups, EMA teacher) with a ViT in timm's layout and DINOHead.

Modes:
  step OUT_DIR   three iterations of a small ViT from formula weights on formula crops; writes
                 OUT_DIR/dino-step-golden.json (losses, teacher entropies and a checksum of every parameter of
                 student and teacher after the last step) for tests/Histo.Tests/DinoParityTests.cs.
  speed JSON     time per iteration of the configuration in the JSON argument on random crops (the bench).
Usage: dino_train_reference.py step golden | dino_train_reference.py speed '{"depth":12,...}'"""
import json, os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dino_reference import DINOLoss
from encoders_reference import ViT as TimmViT


def ViT(dim, depth, heads, patch, image):
    """encoders_reference.ViT (timm's layout, position embeddings resized bicubically to the input's grid) with
    timm's initialisation: trunc-normal 0.02 for position embeddings and linear weights, 1e-6 for the class token."""
    model = TimmViT(dim, depth, heads, patch, image)
    nn.init.trunc_normal_(model.pos_embed, std=.02)
    nn.init.trunc_normal_(model.cls_token, std=1e-6)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            nn.init.zeros_(m.bias)
    return model


class DINOHead(nn.Module):
    """main_dino.py's DINOHead with norm_last_layer=True."""
    def __init__(self, in_dim, out_dim, hidden=2048, bottleneck=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        return self.last_layer(F.normalize(self.mlp(x), dim=-1, p=2))


class MultiCropWrapper(nn.Module):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        counts = torch.unique_consecutive(torch.tensor([inp.shape[-1] for inp in x]), return_counts=True)[1]
        idx_crops, start, output = torch.cumsum(counts, 0), 0, []
        for end in idx_crops:
            output.append(self.backbone(torch.cat(x[start:end])))
            start = end
        return self.head(torch.cat(output))


def get_params_groups(model):
    regularized, not_regularized = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (not_regularized if name.endswith(".bias") or len(param.shape) == 1 else regularized).append(param)
    return [{'params': regularized}, {'params': not_regularized, 'weight_decay': 0.}]


def clip_gradients(model, clip):
    for p in model.parameters():
        if p.grad is not None:
            clip_coef = clip / (p.grad.data.norm(2) + 1e-6)
            if clip_coef < 1:
                p.grad.data.mul_(clip_coef)


class Dino:
    """Student, teacher, loss and optimiser; step() is one iteration of train_one_epoch."""
    def __init__(self, cfg):
        def network():
            return MultiCropWrapper(ViT(cfg['dim'], cfg['depth'], cfg['heads'], cfg['patch'], cfg['image']),
                                    DINOHead(cfg['dim'], cfg['out_dim'], cfg.get('hidden', 2048), cfg.get('bottleneck', 256)))
        self.student, self.teacher = network(), network()
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad = False
        self.loss = DINOLoss(cfg['out_dim'], 2 + cfg['local_crops'])
        self.optimizer = torch.optim.AdamW(get_params_groups(self.student))

    def step(self, images, lr, wd, momentum, temp, freeze_last_layer, clip):
        for i, group in enumerate(self.optimizer.param_groups):
            group['lr'] = lr
            if i == 0:
                group['weight_decay'] = wd
        teacher_output = self.teacher(images[:2])
        student_output = self.student(images)
        center = self.loss.center.clone()
        loss = self.loss(student_output, teacher_output, temp)
        with torch.no_grad():
            p = F.softmax((teacher_output - center) / temp, dim=-1)
            entropy = (-(p * (p + 1e-12).log()).sum(-1)).mean().item()
        self.optimizer.zero_grad()
        loss.backward()
        clip_gradients(self.student, clip)
        if freeze_last_layer:
            for n, p in self.student.named_parameters():
                if 'last_layer' in n:
                    p.grad = None
        self.optimizer.step()
        with torch.no_grad():
            for param_q, param_k in zip(self.student.parameters(), self.teacher.parameters()):
                param_k.data.mul_(momentum).add_((1 - momentum) * param_q.detach().data)
        return loss.item(), entropy


def canonical(name):
    """Parameter names shared with Histo's state dicts (Histo names the weight-norm pair last_layer_weight_v/g)."""
    return name.replace('last_layer.weight_', 'last_layer_weight_')


def phase(name):
    return sum((i + 1) * ord(c) for i, c in enumerate(name)) % 997 * 0.01


def formula_weights(model):
    """Every parameter from a formula of its name: norm gains 1 + 0.1 sin, weight-norm gain 1, others 0.05 sin."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            name = canonical(name)
            if name.endswith('last_layer_weight_g'):
                p.fill_(1)
                continue
            j = torch.arange(p.numel(), dtype=torch.float64)
            s = torch.sin(0.37 * j + phase(name)).reshape(p.shape)
            p.copy_(1 + 0.1 * s if ('norm' in name and name.endswith('weight')) else 0.05 * s)


def formula_crops(batch, size, view):
    j = torch.arange(batch * 3 * size * size, dtype=torch.float64)
    return torch.sin(0.013 * j + 0.7 * view).reshape(batch, 3, size, size).float()


def checksum(t):
    j = torch.arange(t.numel(), dtype=torch.float64)
    flat = t.detach().double().flatten()
    return [flat.sum().item(), (flat * torch.sin(0.1 * j)).sum().item(), flat.abs().sum().item()]


STEP_CONFIG = dict(dim=48, depth=2, heads=3, patch=4, image=16, out_dim=64, hidden=64, bottleneck=32, local_crops=2,
                   batch=4, local_size=8)
STEP_SETTINGS = [  # lr, wd, momentum, teacher temperature, freeze last layer, clip
    (1e-3, 0.04, 0.9, 0.04, True, 0.3),
    (2e-3, 0.1, 0.95, 0.05, False, 0.3),
    (1.5e-3, 0.2, 0.99, 0.06, False, 3.0),
]


def step_mode(out):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = STEP_CONFIG
    dino = Dino(cfg)
    formula_weights(dino.student)
    dino.teacher.load_state_dict(dino.student.state_dict())
    crops = [formula_crops(cfg['batch'], cfg['image'], v) for v in range(2)] + \
            [formula_crops(cfg['batch'], cfg['local_size'], 2 + v) for v in range(cfg['local_crops'])]
    golden = {'config': cfg, 'settings': STEP_SETTINGS, 'loss': [], 'entropy': []}
    for lr, wd, m, temp, freeze, clip in STEP_SETTINGS:
        loss, entropy = dino.step(crops, lr, wd, m, temp, freeze, clip)
        golden['loss'].append(loss)
        golden['entropy'].append(entropy)
    golden['center'] = checksum(dino.loss.center)
    golden['student'] = {canonical(n): checksum(p) for n, p in dino.student.named_parameters()}
    golden['teacher'] = {canonical(n): checksum(p) for n, p in dino.teacher.named_parameters()}
    with open(os.path.join(out, 'dino-step-golden.json'), 'w') as f:
        json.dump(golden, f)
    print('losses', golden['loss'], 'entropies', golden['entropy'])


def speed_mode(cfg):
    """Seconds per iteration on random crops (2 global + local), after two warm-up iterations."""
    torch.set_num_threads(cfg.get('threads', torch.get_num_threads()))
    torch.manual_seed(0)
    dino = Dino(cfg)
    b = cfg['batch']
    crops = [torch.randn(b, 3, cfg['image'], cfg['image']) for _ in range(2)] + \
            [torch.randn(b, 3, cfg['local_size'], cfg['local_size']) for _ in range(cfg['local_crops'])]
    for _ in range(2):
        dino.step(crops, 1e-4, 0.04, 0.996, 0.04, False, 3.0)
    n = cfg.get('iterations', 5)
    start = time.perf_counter()
    for _ in range(n):
        dino.step(crops, 1e-4, 0.04, 0.996, 0.04, False, 3.0)
    seconds = (time.perf_counter() - start) / n
    print(json.dumps({'seconds_per_iteration': seconds, 'torch': torch.__version__, 'threads': torch.get_num_threads()}))


if __name__ == '__main__':
    if sys.argv[1] == 'step':
        step_mode(sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), 'golden'))
    elif sys.argv[1] == 'speed':
        speed_mode(json.loads(sys.argv[2]))
    else:
        sys.exit(__doc__)
