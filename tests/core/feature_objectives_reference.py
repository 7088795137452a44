"""Reference values for tests/core/test_feature_objectives.cpp, computed with PyTorch (Debian's
python3-torch) from the formulas documented with muki_feature_objective in sdk/include/muki/plugin.h,
written independently of muki's C++ code.

    feature_objectives_reference.py INPUTS.pt OUTPUT.txt

INPUTS.pt (torch.save format, written by the C++ test with torch::pickle_save) holds a dict:
`student` [b, H_s], `teacher0`, `teacher1` [b, H_i], `other` [m, H_s], and every parameter of a DFA and a CFL module
as `dfa.<name>` / `cfl.<name>`. OUTPUT.txt gets one line per value: NAME v1 v2 ...
"""
import sys

import torch
import torch.nn.functional as F

tensors = torch.load(sys.argv[1])
teachers = [tensors["teacher0"], tensors["teacher1"]]


def linear(x, name):
    return x @ tensors[name + ".weight"].T + tensors[name + ".bias"]


def squared_distances(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def mmd2(x, y):
    x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    dxx, dyy, dxy = squared_distances(x, x), squared_distances(y, y), squared_distances(x, y)
    n, m = len(x), len(y)
    s = ((dxx.sum() + dyy.sum() + 2 * dxy.sum()) / (n + m) ** 2).detach()
    kernel = lambda d: sum(torch.exp(-d / (s * c)) for c in (0.25, 0.5, 1.0, 2.0, 4.0))
    return torch.relu(kernel(dxx).mean() + kernel(dyy).mean() - 2 * kernel(dxy).mean())


def dfa(student):
    rep = linear(torch.cat(teachers, 1), "dfa.teacher_encoder")
    decoded = linear(rep, "dfa.teacher_decoder")
    loss, offset = 0, 0
    for t in teachers:
        loss = loss + F.mse_loss(decoded[:, offset:offset + t.shape[1]], t)
        offset += t.shape[1]
    return loss + F.mse_loss(linear(student, "dfa.student_encoder"), rep.detach())


def cfl(student):
    extract = lambda x: linear(torch.relu(linear(x, "cfl.extractor.0")), "cfl.extractor.2")
    h_s = extract(torch.relu(linear(student, "cfl.student_align")))
    loss = 0
    for i, t in enumerate(teachers):
        h_t = extract(torch.relu(linear(t, f"cfl.teacher_align{i}")))
        rec = linear(torch.relu(linear(h_t, f"cfl.reconstruct{i}.0")), f"cfl.reconstruct{i}.2")
        loss = loss + mmd2(h_s, h_t) + F.mse_loss(rec, t)
    return loss


with open(sys.argv[2], "w") as out:
    for name, fn in [("mmd", lambda s: mmd2(s, tensors["other"])), ("dfa", dfa), ("cfl", cfl)]:
        student = tensors["student"].clone().requires_grad_(True)
        loss = fn(student)
        loss.backward()
        out.write(f"{name} {loss.item():.9g}\n")
        out.write(f"{name}.grad " + " ".join(f"{v:.9g}" for v in student.grad.flatten().tolist()) + "\n")
