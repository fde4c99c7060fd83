using System.Text.Json;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>DINO's loss, centre, schedules and EMA against PyTorch (tools/reference/dino_reference.py).</summary>
public class DinoParityTests
{
    static JsonElement Golden()
    {
        var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "dino-golden.json")));
        return doc.RootElement.Clone();
    }

    static double[] Values(JsonElement e) => e.EnumerateArray().Select(v => v.GetDouble()).ToArray();

    static Tensor Formula(int n, int k, double phase)
    {
        using var j = arange(n * k, dtype: ScalarType.Float64);
        return (3 * sin(0.7 * j + phase)).reshape(n, k).to_type(ScalarType.Float32);
    }

    [Fact]
    public void LossAndCentreMatchPyTorchOverThreeSteps()
    {
        var golden = Golden();
        var temps = Values(golden.GetProperty("teacher_temp"));
        Assert.Equal(Schedules.TeacherTemperature(0.04, 0.07, 3, 5), temps, new ToleranceComparer(1e-12));
        using var loss = new DinoLoss(16, globalCrops: 2);
        for (int step = 0; step < 3; step++)
        {
            using var student = Formula(6 * 3, 16, step);
            using var teacher = Formula(2 * 3, 16, 10 + step);
            using var value = loss.Forward(student, teacher, temps[step]);
            Assert.Equal(golden.GetProperty("loss")[step].GetDouble(), value.item<float>(), 1e-5 * 25);
            var centre = loss.Center.flatten().data<float>().ToArray();
            var expected = Values(golden.GetProperty("center")[step]);
            Assert.True(expected.Zip(centre).Max(p => Math.Abs(p.First - p.Second)) < 1e-5, $"centre after step {step}");
        }
    }

    /// <summary>The two entropies tell the collapses apart: the same sharp target for every image vs a different one per image.</summary>
    [Fact]
    public void MarginalEntropyTellsOnePrototypeCollapseFromDistinctTargets()
    {
        using var student = zeros(4 * 8, 16);
        // Every image (8 per crop, 2 global crops) one-hot on its own prototype: per-image entropy 0, the batch uses 8 prototypes.
        using (var loss = new DinoLoss(16, globalCrops: 2))
        using (var distinct = 10 * nn.functional.one_hot(arange(16) % 8, 16).to_type(ScalarType.Float32))
        using (loss.Forward(student, distinct, 0.04))
        {
            Assert.Equal(0, loss.LastTeacherEntropy, 1e-4);
            Assert.Equal(Math.Log(8), loss.LastTeacherMarginalEntropy, 1e-4);
        }
        // The same prototype for every image: both entropies 0 (what centering exists to prevent).
        using (var loss = new DinoLoss(16, globalCrops: 2))
        using (var same = 10 * nn.functional.one_hot(zeros(16, dtype: ScalarType.Int64), 16).to_type(ScalarType.Float32))
        using (loss.Forward(student, same, 0.04))
        {
            Assert.Equal(0, loss.LastTeacherEntropy, 1e-4);
            Assert.Equal(0, loss.LastTeacherMarginalEntropy, 1e-4);
        }
    }

    [Fact]
    public void SchedulesMatchDinosCosineScheduler()
    {
        var golden = Golden();
        var c = new ToleranceComparer(1e-12);
        Assert.Equal(Values(golden.GetProperty("lr")), Schedules.Cosine(5e-4 * 64 / 256, 1e-6, 4, 5, warmupEpochs: 2), c);
        Assert.Equal(Values(golden.GetProperty("wd")), Schedules.Cosine(0.04, 0.4, 4, 5), c);
        Assert.Equal(Values(golden.GetProperty("momentum")), Schedules.Cosine(0.996, 1.0, 4, 5), c);
    }

    [Fact]
    public void EmaTeacherMatchesPyTorchAndSwapsInAndOut()
    {
        var golden = Golden();
        var momentum = Values(golden.GetProperty("momentum"));
        using var teacher = nn.Linear(5, 4, hasBias: false);
        using (no_grad()) teacher.weight!.copy_(Formula(4, 5, 1));
        using var studentWeights = Formula(4, 5, 2);
        using var ema = new WeightEma(teacher);
        // The EMA tracks a student that sits at fixed weights: put them in, update, and read the shadow.
        using (no_grad()) teacher.weight!.copy_(studentWeights);
        for (int i = 0; i < 3; i++) ema.Update(momentum[i]);
        var shadow = ema.Average(0).flatten().data<float>().ToArray();
        var expected = Values(golden.GetProperty("ema"));
        Assert.True(expected.Zip(shadow).Max(p => Math.Abs(p.First - p.Second)) < 1e-6);
        ema.Apply();
        Assert.Equal(expected[0], teacher.weight!.flatten()[0].item<float>(), 5);
        ema.Restore();
        Assert.True(teacher.weight!.allclose(studentWeights));
    }

    [Fact]
    public void BiasCorrectedEmaOfAConstantIsTheConstant()
    {
        using var model = nn.Linear(3, 2);
        using var ema = new WeightEma(model, startAtZero: true, biasCorrection: true);
        for (int i = 0; i < 5; i++) ema.Update(0.9);
        Assert.True(ema.Average(0).allclose(model.weight!, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void BiasCorrectionFollowsAMomentumThatChangesEveryStep()
    {
        // By hand, the shadow from zero: theta 2 at m 0.5 gives 0.5 * 0 + 0.5 * 2 = 1; theta 4 at m 0.8 gives 0.8 * 1 + 0.2 * 4
        // = 1.6, which weighs 2 by 0.4 and 4 by 0.2. Corrected by their sum 1 - 0.5 * 0.8 = 0.6: 2.6667 (1 - 0.8^2 would give 4.444).
        using var model = nn.Linear(1, 1, hasBias: false);
        using var ema = new WeightEma(model, startAtZero: true, biasCorrection: true);
        using (no_grad()) model.weight!.fill_(2);
        ema.Update(0.5);
        using (no_grad()) model.weight!.fill_(4);
        ema.Update(0.8);
        using var average = ema.Average(0);
        Assert.Equal(1.6 / 0.6, average.item<float>(), 5);
    }

    sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= tolerance * Math.Max(1, Math.Abs(a));
        public int GetHashCode(double d) => 0;
    }
}
