using static TorchSharp.torch;

namespace Histo.Mil;

/// <summary>
/// What a MIL model returns for one bag: class logits, and, when the model has them, a score per
/// instance (attention weights or instance scores, for heatmaps) and an auxiliary loss (CLAM's instance
/// clustering). The same shape for every model, whatever its options.
/// </summary>
/// <param name="Logits">[C] bag logits (for ordinal heads, the K-1 threshold logits).</param>
/// <param name="InstanceScores">[N] a score per instance, or null (mean pooling has none).</param>
/// <param name="AuxiliaryLoss">A scalar added to the bag loss during training, or null.</param>
public sealed record MilOutput(Tensor Logits, Tensor? InstanceScores, Tensor? AuxiliaryLoss) : IDisposable
{
    public void Dispose()
    {
        Logits.Dispose();
        InstanceScores?.Dispose();
        AuxiliaryLoss?.Dispose();
    }
}

/// <summary>
/// A permutation-invariant model over a bag of instance features [N, D]. Training-only signals (CLAM's
/// instance loss needs the bag label) come through <see cref="Forward(Tensor, long?)"/>.
/// </summary>
public abstract class MilModel : nn.Module<Tensor, Tensor>
{
    protected MilModel(string name) : base(name) { }

    /// <summary>Bag [N, D] (and, while training, its label) to a <see cref="MilOutput"/>.</summary>
    public abstract MilOutput Forward(Tensor bag, long? label = null);

    /// <summary>Logits only (the Module contract).</summary>
    public override Tensor forward(Tensor bag)
    {
        var output = Forward(bag);
        output.InstanceScores?.Dispose();
        output.AuxiliaryLoss?.Dispose();
        return output.Logits;
    }

    protected static void CheckBag(Tensor bag, int dim)
    {
        if (bag.dim() != 2) throw new HistoException($"a bag must be [instances, features]; got [{string.Join(", ", bag.shape)}]");
        if (bag.shape[0] == 0) throw new HistoException("empty bag: the slide has no patches; re-tile it with a lower --min-tissue or drop it from the labels CSV");
        if (bag.shape[1] != dim) throw new HistoException($"bag has {bag.shape[1]}-d features but the model expects {dim}-d; embed with the same encoder");
    }
}
