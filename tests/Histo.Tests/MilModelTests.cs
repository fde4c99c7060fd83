using Histo.Mil;
using static TorchSharp.torch;

namespace Histo.Tests;

public class MilModelTests
{
    public static TheoryData<string, int> ModelsAndSizes()
    {
        var data = new TheoryData<string, int>();
        // TransMIL is order-dependent by design (TransMilTests test what holds for it).
        foreach (var m in MilRegistry.All.Where(m => m.PermutationInvariant)) foreach (int n in new[] { 1, 7, 300 }) data.Add(m.Name, n);
        return data;
    }

    [Theory]
    [MemberData(nameof(ModelsAndSizes))]
    public void OutputIsInvariantToInstanceOrder(string name, int instances)
    {
        manual_seed(1);
        using var model = MilRegistry.Create(name, 32, 3);
        model.eval();
        using var _ = no_grad();
        using var bag = randn(instances, 32);
        using var permutation = randperm(instances);
        using var shuffled = bag.index_select(0, permutation);
        using var a = model.Forward(bag);
        using var b = model.Forward(shuffled);
        Assert.Equal(new long[] { 3 }, a.Logits.shape);
        Assert.True(a.Logits.allclose(b.Logits, rtol: 1e-5, atol: 1e-5), $"{name}: logits changed under permutation");
        if (a.InstanceScores is not null)
        {
            Assert.Equal(new long[] { instances }, a.InstanceScores.shape);
            using var permutedScores = a.InstanceScores.index_select(0, permutation);
            Assert.True(permutedScores.allclose(b.InstanceScores!, rtol: 1e-5, atol: 1e-6),
                $"{name}: instance scores do not follow the instances");
        }
    }

    [Theory]
    [InlineData("abmil")]
    [InlineData("clam-sb")]
    [InlineData("dsmil")]
    public void EveryParameterGetsAGradientAndNoneIsNaN(string name)
    {
        // Three classes, so CLAM-SB trains its out-of-class branches too (subtyping).
        manual_seed(2);
        using var model = MilRegistry.Create(name, 16, 3);
        model.train();
        using var bag = randn(40, 16);
        using var output = model.Forward(bag, label: 1);
        using var head = MilHead.Create(HeadKind.Softmax, 3);
        using var loss = MilTraining.BagLoss(head, output, 1);
        loss.backward();
        Assert.True(float.IsFinite(loss.item<float>()));
        foreach (var (pname, p) in model.named_parameters())
        {
            Assert.True(p.grad is not null, $"{name}: {pname} got no gradient");
            Assert.False(p.grad!.isnan().any().item<bool>(), $"{name}: {pname} has NaN gradient");
        }
    }

    [Fact]
    public void EmptyBagAndWrongWidthGiveClearErrors()
    {
        using var model = MilRegistry.Create("abmil", 8, 2);
        Assert.Contains("empty bag", Assert.Throws<HistoException>(() => model.Forward(zeros(0, 8))).Message);
        Assert.Contains("expects 8-d", Assert.Throws<HistoException>(() => model.Forward(zeros(4, 9))).Message);
    }

    [Fact]
    public void OrdinalHeadsPredictByCountingTasks()
    {
        using var coral = (CoralHead)MilHead.Create(HeadKind.Coral, 4);
        using var corn = MilHead.Create(HeadKind.Corn, 4);
        // CORN: P(y > 0) = 0.9, P(y > 1) = 0.9 * 0.8 = 0.72, P(y > 2) = 0.72 * 0.1 -> grade 2.
        using var cornLogits = logit(tensor(new[] { 0.9f, 0.8f, 0.1f }));
        Assert.Equal(2, corn.Predict(cornLogits));
        using var p = corn.Probabilities(cornLogits);
        Assert.Equal(1.0, p.sum().item<float>(), 5);
        Assert.Equal(0.72 - 0.072, p[2].item<float>(), 5);
        // CORAL with a large shared score predicts the top grade; with a very negative one, grade 0.
        Assert.Equal(3, coral.Predict(tensor(new[] { 10f })));
        Assert.Equal(0, coral.Predict(tensor(new[] { -10f })));
        // CORN loss for label 0 only trains task 0.
        using var loss0 = corn.Loss(tensor(new[] { 0f, 5f, 5f }), 0);
        Assert.Equal(Math.Log(2), loss0.item<float>(), 5);
    }
}
