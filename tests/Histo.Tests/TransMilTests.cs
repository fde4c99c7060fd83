using System.Text.Json;
using Histo.Mil;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// TransMIL against tools/reference/transmil_reference.py (PyTorch, written from the authors' TransMIL.py and the
/// nystrom-attention package): the reference's float16 weights under its parameter names, loaded strictly; logits to 1e-4
/// and the class token's attention on bags of 1 to 20,000 instances; what permutation does (PPEG sees the order).
/// </summary>
public class TransMilTests
{
    static string GoldenPath(string name) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", name);

    /// <summary>The reference's bags: x[i, j] = sin(0.37 i + 1.3 j) cos(0.11 j - 0.05 i).</summary>
    static Tensor Bag(int n, int d)
    {
        var x = new float[n * d];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) x[i * d + j] = (float)(Math.Sin(0.37 * i + 1.3 * j) * Math.Cos(0.11 * j - 0.05 * i));
        return tensor(x, [n, d]);
    }

    static TransMil Load(JsonElement golden)
    {
        var model = new TransMil(golden.GetProperty("input_dim").GetInt32(), golden.GetProperty("classes").GetInt32());
        Histo.Models.WeightLoading.Load(model, Histo.Models.Checkpoint.Read(GoldenPath("transmil-mini.pt")), "transmil-mini.pt");
        model.eval();
        return model;
    }

    [Fact]
    public void LogitsAndAttentionMatchTheReference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(GoldenPath("transmil-golden.json")));
        var golden = doc.RootElement;
        using var model = Load(golden);
        int d = golden.GetProperty("input_dim").GetInt32();
        foreach (var bag in golden.GetProperty("bags").EnumerateObject())
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            int n = int.Parse(bag.Name);
            using var output = model.Forward(Bag(n, d));
            var logits = output.Logits.data<float>().ToArray();
            var expected = bag.Value.GetProperty("logits").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            for (int c = 0; c < expected.Length; c++)
                Assert.True(Math.Abs(expected[c] - logits[c]) < 1e-4, $"bag of {n}: logit {c} is {logits[c]}, reference {expected[c]}");
            var attention = output.InstanceScores!.data<float>().ToArray();
            Assert.Equal(n, attention.Length);
            Assert.Equal(bag.Value.GetProperty("attention_sum").GetDouble(), attention.Sum(), 3);
            Assert.Equal(bag.Value.GetProperty("attention_argmax").GetInt32(), Array.IndexOf(attention, attention.Max()));
            var first = bag.Value.GetProperty("attention_first").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            for (int i = 0; i < first.Length; i++) Assert.True(Math.Abs(first[i] - attention[i]) < 1e-5, $"bag of {n}: attention {i}");
        }
    }

    /// <summary>PPEG convolves the instances as a square image, so reordering a bag changes its logits (unlike ABMIL's); what
    /// holds is determinism: the same bag in the same order gives the same logits.</summary>
    [Fact]
    public void OrderMattersButTheSameBagGivesTheSameLogits()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(GoldenPath("transmil-golden.json")));
        using var model = Load(doc.RootElement);
        using var _ = no_grad();
        using var bag = Bag(300, doc.RootElement.GetProperty("input_dim").GetInt32());
        using var a = model.Forward(bag);
        using var b = model.Forward(bag);
        using var reversed = model.Forward(bag.flip(0));
        Assert.Equal(a.Logits.data<float>().ToArray(), b.Logits.data<float>().ToArray());
        double change = a.Logits.sub(reversed.Logits).abs().max().item<float>();
        Assert.True(change > 1e-4, $"reversing the bag changed the logits by only {change}");
    }
}
