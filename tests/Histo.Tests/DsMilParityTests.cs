using System.Text.Json;
using Histo.Mil;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// DSMIL against PyTorch (tools/reference/dsmil_reference.py, written from the authors' dsmil.py and train_tcga.py):
/// both streams' logits, the paper's combined score, attention, the 0.5 bag + 0.5 max-instance loss the trainer
/// takes, and one AdamW step on it.
/// </summary>
public class DsMilParityTests
{
    const int DIn = 24, Classes = 3, N = 37;

    [Fact]
    public void DsMilTrainsBothStreamsAndMatchesTheAuthorsCode()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "dsmil-golden.json")));
        var golden = doc.RootElement;
        float[] Values(JsonElement e) =>
            e.EnumerateArray().SelectMany(x => x.ValueKind == JsonValueKind.Array ? Values(x) : [x.GetSingle()]).ToArray();
        int label = golden.GetProperty("label").GetInt32();

        using var model = MilRegistry.Create("dsmil", DIn, Classes);
        // The authors' default value path is the identity (passing_v=False): no v parameters.
        Assert.Equal(golden.GetProperty("updated").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal),
            model.state_dict().Keys.Order(StringComparer.Ordinal));
        ParityFormulas.Fill(model);
        using var j = arange(N * DIn, dtype: ScalarType.Float64);
        using var bag = sin(0.05 * j).reshape(N, DIn).to_type(ScalarType.Float32);
        using var head = MilHead.Create(HeadKind.Softmax, Classes);
        model.eval();
        using (no_grad())
        using (var output = model.Forward(bag))
        {
            ParityFormulas.AssertClose(Values(golden.GetProperty("logits")), output.Logits, "combined logits (max + bag) / 2");
            Assert.NotNull(output.StreamLogits);
            ParityFormulas.AssertClose(Values(golden.GetProperty("bag_logits")), output.StreamLogits![0], "bag-stream logits");
            ParityFormulas.AssertClose(Values(golden.GetProperty("max_logits")), output.StreamLogits![1], "max-instance logits");
            // Instance scores: the attention column of the predicted class.
            int predicted = (int)output.Logits.argmax().item<long>();
            var attention = golden.GetProperty("attention").EnumerateArray().Select(row => row[predicted].GetSingle()).ToArray();
            ParityFormulas.AssertClose(attention, output.InstanceScores!, "attention of the predicted class");
        }
        model.train();
        using var optimizer = new Histo.Models.AdamW(model.parameters(), learningRate: 1e-2, weightDecay: 0.01, beta1: 0.9, beta2: 0.999,
            epsilon: 1e-8);
        optimizer.ZeroGrad();
        using var train = model.Forward(bag, label);
        using var loss = MilTraining.BagLoss(head, train, label);
        Assert.Equal(golden.GetProperty("loss").GetSingle(), loss.item<float>(), 5);
        Assert.Equal(0.5 * golden.GetProperty("bag_loss").GetDouble() + 0.5 * golden.GetProperty("max_loss").GetDouble(),
            loss.item<float>(), 5);
        loss.backward();
        optimizer.Step();
        foreach (var (name, value) in model.state_dict())
            ParityFormulas.AssertClose(Values(golden.GetProperty("updated").GetProperty(name)), value, name);
    }
}
