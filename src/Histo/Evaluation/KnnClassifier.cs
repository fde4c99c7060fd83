using static TorchSharp.torch;

namespace Histo.Evaluation;

/// <summary>How the k neighbours vote.</summary>
public enum KnnVote
{
    /// <summary>DINO's vote: each neighbour adds exp(similarity / temperature) to its class.</summary>
    Weighted,
    /// <summary>One vote per neighbour (scikit-learn's default, weights='uniform'); ties go to the lowest class.</summary>
    Majority,
}

/// <summary>
/// k-nearest-neighbour classification by cosine similarity on L2-normalised features, as DINO evaluates
/// frozen features (Caron et al., ICCV 2021; Wu et al. 2018): k = 20 and temperature 0.07 by default.
/// Similarities are one matrix product per chunk of queries, so memory stays bounded.
/// </summary>
public sealed class KnnClassifier : IDisposable
{
    /// <summary>DINO's reported k.</summary>
    public const int DefaultK = 20;
    /// <summary>DINO's vote temperature.</summary>
    public const double DefaultTemperature = 0.07;
    const int QueryChunk = 1024;

    readonly Tensor _train;   // [N, D], rows L2-normalised
    readonly long[] _labels;
    public int Classes { get; }

    public KnnClassifier(float[,] features, int[] labels)
    {
        if (features.GetLength(0) != labels.Length) throw new HistoException($"{features.GetLength(0)} feature rows but {labels.Length} labels");
        if (labels.Length == 0) throw new HistoException("kNN needs at least one training example");
        using var raw = tensor(features);
        _train = Normalise(raw);
        _labels = labels.Select(l => (long)l).ToArray();
        Classes = labels.Max() + 1;
    }

    static Tensor Normalise(Tensor x) => nn.functional.normalize(x, p: 2, dim: 1, eps: 1e-12);

    /// <summary>Predicted class per query row.</summary>
    public int[] Predict(float[,] queries, int k = DefaultK, KnnVote vote = KnnVote.Weighted, double temperature = DefaultTemperature)
    {
        if (k < 1) throw new HistoException($"k must be at least 1 (got {k})");
        k = Math.Min(k, _labels.Length);
        int n = queries.GetLength(0);
        var result = new int[n];
        using var all = tensor(queries);
        using var labels = tensor(_labels);
        for (int start = 0; start < n; start += QueryChunk)
        {
            using var scope = NewDisposeScope();
            int count = Math.Min(QueryChunk, n - start);
            var q = Normalise(all.narrow(0, start, count));
            var similarity = q.matmul(_train.T);                           // [Q, N] cosine similarities
            var (topValues, topIndices) = similarity.topk(k, dim: 1, largest: true, sorted: true);
            var neighbourLabels = labels.index_select(0, topIndices.flatten()).reshape(count, k); // [Q, k]
            var weights = vote == KnnVote.Weighted ? (topValues / temperature).exp() : ones_like(topValues);
            var votes = zeros(count, Classes, dtype: weights.dtype).scatter_add_(1, neighbourLabels, weights); // [Q, C]
            // argmax returns the first maximum: ties go to the lowest class, as scikit-learn's mode does.
            var predicted = votes.argmax(1).data<long>().ToArray();
            for (int i = 0; i < count; i++) result[start + i] = (int)predicted[i];
        }
        return result;
    }

    public void Dispose() => _train.Dispose();
}
