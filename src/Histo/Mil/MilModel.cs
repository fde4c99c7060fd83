using static TorchSharp.torch;

namespace Histo.Mil;

/// <summary>
/// What a MIL model returns for one bag: class logits, and, when the model has them, a score per
/// instance (attention weights or instance scores, for heatmaps), an auxiliary loss (CLAM's instance
/// clustering) and the logits of separately trained streams (DSMIL). The same shape for every model, whatever
/// its options.
/// </summary>
/// <param name="Logits">[C] bag logits used for prediction (for ordinal heads, the head's model outputs).</param>
/// <param name="InstanceScores">[N] a score per instance, or null (mean pooling has none).</param>
/// <param name="AuxiliaryLoss">A scalar added to the bag loss during training, or null.</param>
/// <param name="StreamLogits">
/// [S, C] logits of S streams that are each trained with the head's loss, the bag loss being their mean (DSMIL:
/// the bag stream and the max-instance stream, 0.5 each); null when the head's loss is taken on
/// <paramref name="Logits"/>.
/// </param>
public sealed record MilOutput(Tensor Logits, Tensor? InstanceScores, Tensor? AuxiliaryLoss, Tensor? StreamLogits = null) : IDisposable
{
    public void Dispose()
    {
        Logits.Dispose();
        InstanceScores?.Dispose();
        AuxiliaryLoss?.Dispose();
        StreamLogits?.Dispose();
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

    /// <summary>
    /// Backpropagates a loss computed from the last <see cref="Forward(Tensor, long?)"/>. A model that recomputes
    /// activations instead of keeping them (ABMIL on large bags) finishes its backward pass here, so training calls this,
    /// not <c>loss.backward()</c>.
    /// </summary>
    public virtual void Backward(Tensor loss) => loss.backward();

    /// <summary>Logits only (the Module contract).</summary>
    public override Tensor forward(Tensor bag)
    {
        var output = Forward(bag);
        output.InstanceScores?.Dispose();
        output.AuxiliaryLoss?.Dispose();
        output.StreamLogits?.Dispose();
        return output.Logits;
    }

    protected static void CheckBag(Tensor bag, int dim)
    {
        if (bag.dim() != 2) throw new HistoException($"a bag must be [instances, features]; got [{string.Join(", ", bag.shape)}]");
        if (bag.shape[0] == 0) throw new HistoException("empty bag: the slide has no patches; re-tile it with a lower --min-tissue or "
            + "drop it from the labels CSV");
        if (bag.shape[1] != dim) throw new HistoException($"bag has {bag.shape[1]}-d features but the model expects {dim}-d; embed "
            + $"with the same encoder");
    }
}
