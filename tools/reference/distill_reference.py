#!/usr/bin/python3
"""Independent reference for knowledge distillation's two losses, written as golden/distill-golden.json.

Soft targets (Hinton et al. 2015), as RepDistiller's DistillKL and train_student: the KL term is
F.kl_div(log_softmax(z_s / T), softmax(z_t / T), reduction='sum') * T**2 / batch, and the loss with labels is
(1 - alpha) * cross_entropy(z_s, y) + alpha * KL term.

Attention transfer (Zagoruyko and Komodakis, ICLR 2017; their at()/at_loss and RepDistiller's Attention): at(f) =
F.normalize(f.pow(2).mean(1).view(batch, -1)); where a student and a teacher activation differ in size the larger is
F.adaptive_avg_pool2d'ed to the smaller first; L_AT = beta / 2 * sum over pairs of (at(s) - at(t)).pow(2).mean().
The teacher maps at the common size are written too (what a cache of the teacher would hold).

Gradients with respect to the student's logits and activations come from autograd, in float64.

Usage:  /usr/bin/python3 distill_reference.py golden
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def kd_case(seed, b, k, temperature, alpha, labelled):
    g = torch.Generator().manual_seed(seed)
    student = (3 * torch.randn(b, k, generator=g, dtype=torch.float64)).requires_grad_(True)
    teacher = 3 * torch.randn(b, k, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (b,), generator=g)
    kl = F.kl_div(F.log_softmax(student / temperature, dim=1), F.softmax(teacher / temperature, dim=1),
                  reduction="sum") * temperature ** 2 / b
    loss = (1 - alpha) * F.cross_entropy(student, labels) + alpha * kl if labelled else kl
    loss.backward()
    return {"student": student.detach().tolist(), "teacher": teacher.tolist(), "labels": labels.tolist() if labelled else None,
            "temperature": temperature, "alpha": alpha, "loss": loss.item(), "grad_student": student.grad.tolist()}


def at(f):
    return F.normalize(f.pow(2).mean(1).view(f.size(0), -1))


def at_case(seed, b, student_shapes, teacher_shapes, beta):
    g = torch.Generator().manual_seed(seed)
    students = [torch.randn(b, *s, generator=g, dtype=torch.float64).relu().requires_grad_(True) for s in student_shapes]
    teachers = [torch.randn(b, *s, generator=g, dtype=torch.float64).relu() for s in teacher_shapes]
    terms, teacher_maps = [], []
    for s, t in zip(students, teachers):
        side = min(s.shape[2], t.shape[2])
        ps = F.adaptive_avg_pool2d(s, (side, side)) if s.shape[2] > side else s
        pt = F.adaptive_avg_pool2d(t, (side, side)) if t.shape[2] > side else t
        teacher_maps.append(at(pt))
        terms.append((at(ps) - at(pt)).pow(2).mean())
    loss = beta / 2 * sum(terms)
    loss.backward()
    return {"beta": beta, "students": [s.detach().flatten().tolist() for s in students],
            "student_shapes": [list(s.shape) for s in students],
            "teachers": [t.flatten().tolist() for t in teachers], "teacher_shapes": [list(t.shape) for t in teachers],
            "teacher_maps": [m.tolist() for m in teacher_maps], "loss": loss.item(),
            "grad_students": [s.grad.flatten().tolist() for s in students]}


def main():
    if sys.argv[1:] != ["golden"]:
        print(__doc__)
        sys.exit(2)
    kd = [kd_case(1, 6, 5, 4.0, 0.9, True), kd_case(2, 4, 3, 1.0, 0.5, True), kd_case(3, 8, 10, 2.0, 1.0, False)]
    # Teacher larger than the student at the first pair (pooled 12 -> 6 and 7 -> 3, non-integer ratio), equal at the second,
    # the student larger at the third (5 -> 3).
    at_cases = [at_case(4, 2, [(4, 6, 6), (8, 3, 3), (8, 5, 5)], [(6, 12, 12), (12, 7, 7), (4, 3, 3)], 1000.0),
                at_case(5, 3, [(3, 4, 4)], [(5, 4, 4)], 2.0)]
    with open(os.path.join(HERE, "golden", "distill-golden.json"), "w") as f:
        json.dump({"source": "tools/reference/distill_reference.py golden", "kd": kd, "at": at_cases}, f)
    print("distill-golden.json written: KD", [round(c["loss"], 4) for c in kd], "AT", [round(c["loss"], 6) for c in at_cases])


if __name__ == "__main__":
    main()
