using System.Text.Json;
using Histo.Mil;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>ABMIL and gated ABMIL against PyTorch (tools/reference/abmil_reference.py): forward and one AdamW step.</summary>
public class AbmilParityTests
{
    const int DIn = 24, Hidden = 16, Att = 8, Classes = 3, N = 37;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ForwardAndOneAdamWStepMatchPyTorch(bool gated)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "abmil-golden.json")));
        var golden = doc.RootElement.GetProperty(gated ? "gated" : "plain");
        float[] Values(JsonElement e) => e.EnumerateArray().Select(x => x.GetSingle()).ToArray();

        using var model = new AttentionMil(DIn, Classes, gated, Hidden, Att, dropout: 0);
        ParityFormulas.Fill(model);
        using var j = arange(N * DIn, dtype: ScalarType.Float64);
        using var bag = sin(0.05 * j).reshape(N, DIn).to_type(ScalarType.Float32);
        model.eval();
        using (no_grad())
        using (var output = model.Forward(bag))
        {
            ParityFormulas.AssertClose(Values(golden.GetProperty("logits")), output.Logits, "logits");
            ParityFormulas.AssertClose(Values(golden.GetProperty("attention")), output.InstanceScores!, "attention");
        }
        model.train();
        using var optimizer = new Histo.Models.AdamW(model.parameters(), learningRate: 1e-2, weightDecay: 0.01, beta1: 0.9, beta2: 0.999,
            epsilon: 1e-8);
        optimizer.ZeroGrad();
        using var train = model.Forward(bag);
        using var head = MilHead.Create(HeadKind.Softmax, Classes);
        using var loss = head.Loss(train.Logits, 2);
        Assert.Equal(golden.GetProperty("loss").GetSingle(), loss.item<float>(), 5);
        loss.backward();
        // The attention scorer's bias shifts every score equally, which the softmax cancels: its gradient is
        // zero up to round-off, and Adam's normalisation g / (sqrt(v) + eps) turns that round-off into a step
        // of either sign. It is checked for a vanishing gradient instead of against PyTorch's update.
        const string shiftInvariant = "attention_w.bias";
        Assert.True(model.state_dict()[shiftInvariant].grad!.abs().item<float>() < 1e-6);
        optimizer.Step();
        foreach (var (name, value) in model.state_dict().Where(kv => kv.Key != shiftInvariant))
            ParityFormulas.AssertClose(Values(golden.GetProperty("updated").GetProperty(name)), value, name);
    }
}
