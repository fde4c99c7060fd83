using Histo.Models;
using AdamW = Histo.Models.AdamW;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>Histo's AdamW: a hand-computed first step, resume state that continues the same trajectory, and a foreign state
/// file refused. (Its agreement with torch.optim.AdamW over real models is in the ABMIL, DSMIL and DINO parity tests.)</summary>
public class AdamWTests
{
    static (Parameter P, AdamW Optimizer) Make(double lr = 0.1, double wd = 0.5)
    {
        var p = new Parameter(tensor(new float[] { 1f, -2f }));
        return (p, new AdamW([p], lr, wd));
    }

    static void Step(Parameter p, AdamW optimizer, float[] grad)
    {
        optimizer.ZeroGrad();
        using var g = tensor(grad);
        using var loss = (p * g).sum();
        loss.backward();
        optimizer.Step();
    }

    [Fact]
    public void FirstStepIsDecayThenSignedLearningRate()
    {
        // Step 1: m = (1 - b1) g, v = (1 - b2) g^2, so m / (1 - b1) / (sqrt(v / (1 - b2)) + eps) = g / (|g| + eps) = sign(g).
        // p <- p (1 - lr wd) - lr sign(g): 1 * 0.95 - 0.1 = 0.85 and -2 * 0.95 + 0.1 = -1.8.
        var (p, optimizer) = Make();
        Step(p, optimizer, [3f, -0.5f]);
        Assert.Equal(new[] { 0.85f, -1.8f }, p.data<float>().ToArray().Select(v => MathF.Round(v, 5)).ToArray());
        optimizer.Dispose();
    }

    [Fact]
    public void SavedStateContinuesTheSameTrajectory()
    {
        using var dir = new TempDir();
        var (a, straight) = Make();
        Step(a, straight, [3f, -0.5f]); Step(a, straight, [1f, 2f]); Step(a, straight, [-1f, 0.25f]);
        var (b, first) = Make();
        Step(b, first, [3f, -0.5f]);
        first.Save(dir["adamw.bin"]);
        var (c, resumed) = Make();
        using (no_grad()) c.copy_(b);
        resumed.Load(dir["adamw.bin"]);
        Step(c, resumed, [1f, 2f]); Step(c, resumed, [-1f, 0.25f]);
        Assert.Equal(a.data<float>().ToArray(), c.data<float>().ToArray());
        // A state written without the moments' history would differ: the step count matters (bias correction).
        var (d, fresh) = Make();
        using (no_grad()) d.copy_(b);
        Step(d, fresh, [1f, 2f]); Step(d, fresh, [-1f, 0.25f]);
        Assert.NotEqual(a.data<float>().ToArray(), d.data<float>().ToArray());
        foreach (var o in new[] { straight, first, resumed, fresh }) o.Dispose();
    }

    [Fact]
    public void ForeignStateFileIsRefusedNamingTheFile()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["optimizer.bin"], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        var (_, optimizer) = Make();
        var error = Assert.Throws<HistoException>(() => optimizer.Load(dir["optimizer.bin"]));
        Assert.Contains("optimizer.bin", error.Message);
        Assert.Contains("--overwrite", error.Message);
        optimizer.Dispose();
    }
}
