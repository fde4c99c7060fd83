#!/usr/bin/python3
"""PyTorch side of Histo.Bench dino-fmnist: the same DINO recipe (dino_train_reference.Dino: ViT + DINOHead, loss,
clipping, frozen last layer, AdamW, EMA, main_dino.py's schedules) with torchvision's multi-crop augmentations
(DataAugmentationDINO at 32/16 px, blur sigma scaled by 32/224) on Fashion-MNIST, then kNN (cosine, k=20,
weighted, T=0.07) of the teacher and student backbones vs random initialisation. Tells whether a short run
learns in PyTorch too. Usage: dino_fmnist_reference.py '{"images":2048,"epochs":3,"depth":4,...}'"""
import gzip, json, random, sys, time, os
import numpy as np, torch, torch.nn.functional as F
from PIL import Image, ImageFilter
from torchvision import transforms
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dino_train_reference import Dino, ViT
from dino_reference import cosine_scheduler

DATA = '/usr/share/datasets/fashion-mnist'


def read(prefix, count):
    with gzip.open(f'{DATA}/{prefix}-images-idx3-ubyte.gz') as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:count]
    with gzip.open(f'{DATA}/{prefix}-labels-idx1-ubyte.gz') as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:count]
    padded = np.zeros((len(images), 32, 32), np.uint8)
    padded[:, 2:30, 2:30] = images
    return [Image.fromarray(p).convert('RGB') for p in padded], labels.astype(np.int64)


class Blur:
    def __init__(self, p, scale):
        self.p, self.scale = p, scale

    def __call__(self, img):
        return img.filter(ImageFilter.GaussianBlur(radius=self.scale * random.uniform(0.1, 2.0))) if random.random() < self.p else img


class MultiCrop:
    """main_dino.py's DataAugmentationDINO at 32 px global / 16 px local crops (no vertical flip, as Histo's run)."""
    def __init__(self, local_crops, local_scale=(0.2, 0.5)):
        s = 32 / 224
        jitter = transforms.Compose([transforms.RandomHorizontalFlip(p=0.5),
                                     transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                                     transforms.RandomGrayscale(p=0.2)])
        norm = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
        bicubic = transforms.InterpolationMode.BICUBIC
        self.g1 = transforms.Compose([transforms.RandomResizedCrop(32, (0.4, 1.0), interpolation=bicubic), jitter, Blur(1.0, s), norm])
        self.g2 = transforms.Compose([transforms.RandomResizedCrop(32, (0.4, 1.0), interpolation=bicubic), jitter, Blur(0.1, s),
                                      transforms.RandomSolarize(128, p=0.2), norm])
        self.local = transforms.Compose([transforms.RandomResizedCrop(16, local_scale, interpolation=bicubic), jitter, Blur(0.5, s), norm])
        self.n = local_crops

    def __call__(self, img):
        return [self.g1(img), self.g2(img)] + [self.local(img) for _ in range(self.n)]


def features(backbone, images):
    norm = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    with torch.no_grad():
        return torch.cat([backbone(torch.stack([norm(i) for i in images[s:s + 256]])) for s in range(0, len(images), 256)])


def knn(train, train_labels, test, test_labels, k=20, t=0.07, classes=10):
    train, test = F.normalize(train, dim=1), F.normalize(test, dim=1)
    sim, idx = (test @ train.T).topk(k, dim=1)
    votes = torch.zeros(len(test), classes).scatter_add_(1, torch.from_numpy(train_labels)[idx], (sim / t).exp())
    return (votes.argmax(1).numpy() == test_labels).mean()


def main(cfg):
    torch.set_num_threads(cfg.get('threads', 2))
    torch.manual_seed(0); random.seed(0)
    n, epochs, batch = cfg['images'], cfg['epochs'], cfg.get('batch', 64)
    train_images, train_labels = read('train', n)
    test_images, test_labels = read('t10k', cfg.get('test', 2000))
    model = dict(dim=192, depth=cfg.get('depth', 4), heads=3, patch=4, image=32, out_dim=cfg.get('out_dim', 1024), local_crops=cfg.get('local', 2))
    dino = Dino(model)
    random_backbone = ViT(192, model['depth'], 3, 4, 32)
    random_backbone.load_state_dict(dino.teacher.backbone.state_dict())
    aug = MultiCrop(model['local_crops'])
    iters = n // batch
    lr = cosine_scheduler(cfg.get('lr', 2e-3) * batch / 256, 1e-6, epochs, iters, warmup_epochs=1)
    wd = cosine_scheduler(0.04, 0.4, epochs, iters)
    mom = cosine_scheduler(cfg.get('momentum', 0.996), 1, epochs, iters)
    temp = cfg.get('teacher_temp', 0.04)
    start = time.time()
    for epoch in range(epochs):
        order = np.random.RandomState(epoch).permutation(n)
        for it in range(iters):
            views = [aug(train_images[i]) for i in order[it * batch:(it + 1) * batch]]
            crops = [torch.stack([v[c] for v in views]) for c in range(len(views[0]))]
            g = epoch * iters + it
            loss, entropy = dino.step(crops, lr[g], wd[g], mom[g], temp, epoch < 1, 3.0)
        print(f'  epoch {epoch + 1}: loss {loss:.3f}, teacher entropy {entropy:.2f}, {(time.time() - start) / 60:.1f} min', flush=True)
    result = {}
    for name, net in [('random', random_backbone), ('teacher', dino.teacher.backbone), ('student', dino.student.backbone)]:
        result[name] = knn(features(net, train_images), train_labels, features(net, test_images), test_labels)
    print(json.dumps(result))


if __name__ == '__main__':
    main(json.loads(sys.argv[1]))
