#!/usr/bin/python3
"""PyTorch reference of the DINO pieces in src/Histo/SelfSupervised (after facebookresearch/dino's
main_dino.py DINOLoss and utils.cosine_scheduler): the loss and centre over three steps on formula outputs
(2 global + 4 local crops, batch 3, K = 16), the cosine and teacher-temperature schedules, and the EMA
teacher update. Writes golden/dino-golden.json. Usage: dino_reference.py OUT_DIR"""
import json, math, os, sys
import numpy as np, torch, torch.nn.functional as F


class DINOLoss(torch.nn.Module):
    def __init__(self, out_dim, ncrops, student_temp=0.1, center_momentum=0.9):
        super().__init__()
        self.student_temp, self.center_momentum, self.ncrops = student_temp, center_momentum, ncrops
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student_output, teacher_output, temp):
        student_out = (student_output / self.student_temp).chunk(self.ncrops)
        teacher_out = F.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)
        total_loss, n_loss_terms = 0, 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss += loss.mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        with torch.no_grad():
            batch_center = torch.sum(teacher_output, dim=0, keepdim=True) / len(teacher_output)
            self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)
        return total_loss


def cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    warmup_schedule = np.array([])
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_epochs > 0:
        warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
    return np.concatenate((warmup_schedule, schedule))


def formula(n, k, phase):
    j = torch.arange(n * k, dtype=torch.float64)
    return (3 * torch.sin(0.7 * j + phase)).reshape(n, k).float()


def main(out):
    golden = {'loss': [], 'center': []}
    loss_fn = DINOLoss(16, ncrops=6)
    temps = np.concatenate((np.linspace(0.04, 0.07, 3), np.ones(2) * 0.07))
    for step in range(3):
        student = formula(6 * 3, 16, step)
        teacher = formula(2 * 3, 16, 10 + step)
        golden['loss'].append(loss_fn(student, teacher, float(temps[step])).item())
        golden['center'].append(loss_fn.center.flatten().tolist())
    golden['teacher_temp'] = temps.tolist()
    golden['lr'] = cosine_scheduler(5e-4 * 64 / 256, 1e-6, 4, 5, warmup_epochs=2).tolist()
    golden['wd'] = cosine_scheduler(0.04, 0.4, 4, 5).tolist()
    golden['momentum'] = cosine_scheduler(0.996, 1.0, 4, 5).tolist()
    # EMA teacher: theta_t <- m theta_t + (1 - m) theta_s
    teacher_w, student_w = formula(4, 5, 1), formula(4, 5, 2)
    for m in golden['momentum'][:3]:
        teacher_w = teacher_w * m + (1 - m) * student_w
    golden['ema'] = teacher_w.flatten().tolist()
    with open(os.path.join(out, 'dino-golden.json'), 'w') as f:
        json.dump(golden, f)
    print('losses', golden['loss'])


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'golden')
