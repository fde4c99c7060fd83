using TorchSharp;
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
/// Similarities are one matrix product per chunk of queries and chunk of training rows, with a running top-k
/// across training chunks, so memory is bounded by the chunk sizes, not the training set (1M x 512 rows would
/// otherwise need a 4 GB [1024, N] similarity per query chunk).
/// </summary>
public sealed class KnnClassifier : IDisposable
{
    /// <summary>DINO's reported k.</summary>
    public const int DefaultK = 20;
    /// <summary>DINO's vote temperature.</summary>
    public const double DefaultTemperature = 0.07;
    const int QueryChunk = 1024;
    /// <summary>Training rows per similarity block: [1024, 32768] floats is 128 MiB.</summary>
    const int TrainChunk = 32_768;

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

    /// <summary>Predicted class per query row: the argmax of the votes (ties to the lowest class, as scikit-learn's mode).</summary>
    public int[] Predict(float[,] queries, int k = DefaultK, KnnVote vote = KnnVote.Weighted, double temperature = DefaultTemperature) =>
        Probes.ArgMax(Scores(queries, k, vote, temperature));

    /// <summary>
    /// Class scores per query row: each class's share of the votes (rows sum to 1). With the majority vote this is
    /// scikit-learn's KNeighborsClassifier.predict_proba (weights='uniform'); it is what ROC AUC ranks.
    /// </summary>
    public double[][] Scores(float[,] queries, int k = DefaultK, KnnVote vote = KnnVote.Weighted, double temperature = DefaultTemperature)
    {
        if (k < 1) throw new HistoException($"k must be at least 1 (got {k})");
        k = Math.Min(k, _labels.Length);
        int n = queries.GetLength(0);
        var result = new double[n][];
        using var all = tensor(queries);
        using var labels = tensor(_labels);
        for (int start = 0; start < n; start += QueryChunk)
        {
            using var scope = NewDisposeScope();
            int count = Math.Min(QueryChunk, n - start);
            var q = Normalise(all.narrow(0, start, count));
            var (topValues, topIndices) = NearestNeighbours(q, k);               // [Q, k] over the whole training set
            var neighbourLabels = labels.index_select(0, topIndices.flatten()).reshape(count, k); // [Q, k]
            using TorchSharp.Scalar temperatureScalar = temperature.ToScalar();
            var weights = vote == KnnVote.Weighted ? topValues.div(temperatureScalar).exp() : ones_like(topValues);
            var votes = zeros(count, Classes, dtype: ScalarType.Float64)
                .scatter_add_(1, neighbourLabels, weights.to_type(ScalarType.Float64));  // [Q, C]
            var shares = (votes / votes.sum(1, keepdim: true)).data<double>().ToArray();
            for (int i = 0; i < count; i++) result[start + i] = shares.AsSpan(i * Classes, Classes).ToArray();
        }
        return result;
    }

    /// <summary>
    /// The k largest cosine similarities of each query and their training indices, in descending order: the top k of
    /// each training chunk merged into a running top k, so the [Q, N] similarity is never held whole.
    /// </summary>
    (Tensor Values, Tensor Indices) NearestNeighbours(Tensor q, int k)
    {
        long n = _train.shape[0];
        Tensor? bestValues = null, bestIndices = null;
        for (long start = 0; start < n; start += TrainChunk)
        {
            using var scope = NewDisposeScope();
            long count = Math.Min(TrainChunk, n - start);
            var similarity = q.matmul(_train.narrow(0, start, count).T);           // [Q, chunk]
            var (values, indices) = similarity.topk((int)Math.Min(k, count), dim: 1, largest: true, sorted: true);
            using TorchSharp.Scalar offset = start.ToScalar();
            indices = indices.add(offset, Models.KeptScalars.One);
            if (bestValues is not null)
            {
                // Earlier chunks first, so equal similarities keep the lower training index, as one topk over all rows.
                var mergedValues = cat([bestValues, values], 1);
                var mergedIndices = cat([bestIndices!, indices], 1);
                var (v, position) = mergedValues.topk(k, dim: 1, largest: true, sorted: true);
                values = v;
                indices = mergedIndices.gather(1, position);
            }
            bestValues?.Dispose(); bestIndices?.Dispose();
            bestValues = values.MoveToOuterDisposeScope();
            bestIndices = indices.MoveToOuterDisposeScope();
        }
        return (bestValues!, bestIndices!);
    }

    public void Dispose() => _train.Dispose();
}
