using TorchSharp;
using Histo.IO;
using static Histo.Models.KeptScalars;
using static TorchSharp.torch;

namespace Histo.Evaluation;

/// <summary>
/// Truth and prediction instances of one image, renumbered 1..N in id order (HoVer-Net's remap_label), with their areas,
/// pixel-count intersections and centroids. Built from the joint histogram of (truth, prediction) ids, so a 1000 x 1000
/// tile with hundreds of nuclei costs one pass, not one mask per pair.
/// </summary>
public sealed class InstancePairs
{
    /// <summary>The original ids of instances 1..N (index 0 is instance 1).</summary>
    public int[] TruthIds { get; }
    public int[] PredictionIds { get; }
    public long[] TruthAreas { get; }
    public long[] PredictionAreas { get; }
    /// <summary>Intersections [truth, prediction], zero-based instance indices.</summary>
    public long[,] Intersections { get; }
    /// <summary>Centroids (x, y): the mean pixel position (HoVer-Net's moments m10/m00, m01/m00).</summary>
    public (double X, double Y)[] TruthCentroids { get; }
    public (double X, double Y)[] PredictionCentroids { get; }
    /// <summary>Bounding boxes in pixels (first column and row, width and height counted inclusively, as COCO's rleToBbox).</summary>
    public InstanceBox[] TruthBoxes { get; }
    public InstanceBox[] PredictionBoxes { get; }

    public int TruthCount => TruthIds.Length;
    public int PredictionCount => PredictionIds.Length;

    public InstancePairs(LabelMap truth, LabelMap prediction)
    {
        if (truth.Width != prediction.Width || truth.Height != prediction.Height)
            throw new HistoException($"truth is {truth.Width} x {truth.Height} px but the prediction {prediction.Width} x "
                + $"{prediction.Height}; label maps must be the same size");
        using var scope = NewDisposeScope();
        var (truthIds, truthIndex) = Renumber(truth);
        var (predIds, predIndex) = Renumber(prediction);
        TruthIds = truthIds;
        PredictionIds = predIds;
        long nt = truthIds.Length + 1, np = predIds.Length + 1;
        using var stride = np.ToScalar();   // kept alive through the call (KeptScalars)
        var joint = truthIndex.mul(stride).add(predIndex, One).bincount(null, nt * np);   // [Nt + 1, Np + 1], 0 = background
        var counts = joint.data<long>().ToArray();
        Intersections = new long[nt - 1, np - 1];
        TruthAreas = new long[nt - 1];
        PredictionAreas = new long[np - 1];
        for (long t = 0; t < nt; t++)
            for (long p = 0; p < np; p++)
            {
                long c = counts[t * np + p];
                if (t > 0) TruthAreas[t - 1] += c;
                if (p > 0) PredictionAreas[p - 1] += c;
                if (t > 0 && p > 0) Intersections[t - 1, p - 1] = c;
            }
        TruthCentroids = Centroids(truthIndex, truth.Width, truthIds.Length);
        PredictionCentroids = Centroids(predIndex, prediction.Width, predIds.Length);
        TruthBoxes = Boxes(truthIndex, truth.Width, truthIds.Length);
        PredictionBoxes = Boxes(predIndex, prediction.Width, predIds.Length);
    }

    /// <summary>
    /// Boxes from two sorts: pixels ordered by (instance, column) and by (instance, row) put each instance's first and last
    /// column and row at the ends of its run, whose offsets the instances' pixel counts give.
    /// </summary>
    static InstanceBox[] Boxes(Tensor index, int width, int count)
    {
        using var scope = NewDisposeScope();
        long pixelCount = index.shape[0], height = pixelCount / width;
        using TorchSharp.Scalar pixels = pixelCount.ToScalar(), columns = width.ToScalar(), rows = height.ToScalar();
        var pixel = arange(Zero, pixels, One, ScalarType.Int64);
        var x = pixel.remainder(columns);
        var y = pixel.div(columns, rounding_mode: RoundingMode.floor);
        var ends = index.bincount(null, count + 1).cumsum(0);
        var last = ends.sub(One);
        var first = cat([zeros(1, ScalarType.Int64), ends[..^1]]);
        (long[] Low, long[] High) Extent(Tensor coordinate, TorchSharp.Scalar size)
        {
            var (sorted, _) = index.mul(size).add(coordinate, One).sort();
            return (sorted.index_select(0, first).remainder(size).data<long>().ToArray(),
                sorted.index_select(0, last.clamp_min(Zero)).remainder(size).data<long>().ToArray());
        }
        var (x0, x1) = Extent(x, columns);
        var (y0, y1) = Extent(y, rows);
        return Enumerable.Range(1, count).Select(i => new InstanceBox((int)x0[i], (int)y0[i], (int)(x1[i] - x0[i] + 1),
            (int)(y1[i] - y0[i] + 1))).ToArray();
    }

    /// <summary>Sorted distinct nonzero ids, and each pixel's instance number (0 background, 1..N).</summary>
    static (int[] Ids, Tensor Index) Renumber(LabelMap map)
    {
        var labels = tensor(map.Labels);
        var (values, inverse, _) = unique(labels, sorted: true, return_inverse: true);
        var ids = values.data<int>().ToArray();
        bool hasBackground = ids.Length > 0 && ids[0] == 0;
        // unique's inverse counts the background as instance 0 when present; otherwise shift every instance up by one.
        var index = hasBackground ? inverse : inverse.add(One, One);
        return (hasBackground ? ids[1..] : ids, index.to_type(ScalarType.Int64).MoveToOuterDisposeScope());
    }

    static (double X, double Y)[] Centroids(Tensor index, int width, int count)
    {
        using var scope = NewDisposeScope();
        using TorchSharp.Scalar pixels = index.shape[0].ToScalar(), columns = width.ToScalar();
        var pixel = arange(Zero, pixels, One, ScalarType.Int64);
        var x = pixel.remainder(columns).to_type(ScalarType.Float64);
        var y = pixel.div(columns, rounding_mode: RoundingMode.floor).to_type(ScalarType.Float64);
        var area = index.bincount(null, count + 1).to_type(ScalarType.Float64);
        var sx = index.bincount(x, count + 1).div(area).data<double>().ToArray();
        var sy = index.bincount(y, count + 1).div(area).data<double>().ToArray();
        return Enumerable.Range(1, count).Select(i => (sx[i], sy[i])).ToArray();
    }

    public double Union(int t, int p) => TruthAreas[t] + PredictionAreas[p] - Intersections[t, p];
}

/// <summary>
/// The counts behind typed detection (compute_stats.py's run_nuclei_type_stat): paired centroids and how many agree in type,
/// and per type c the pairs where either side is c (TP, TN, FP, FN) and the unpaired predictions and truths of type c.
/// HoVer-Net pools them over the dataset before dividing, which <see cref="Add"/> does.
/// </summary>
public sealed record TypedCounts(int Paired, int SameType, IReadOnlyDictionary<int, (int Tp, int Tn, int Fp, int Fn, int FpD,
    int FnD)> ByType)
{
    /// <summary>HoVer-Net's compute_stats.py weights of a type's false positives and negatives, paired (w0, w1) and unpaired
    /// (w2, w3).</summary>
    static readonly double[] TypeWeights = [2, 2, 1, 1];

    public double TypeAccuracy => SameType / (double)Paired;

    public IReadOnlyDictionary<int, double> F1ByType => ByType.ToDictionary(kv => kv.Key, kv =>
    {
        var (tp, tn, fp, fn, fpD, fnD) = kv.Value;
        return 2.0 * (tp + tn) / (2.0 * (tp + tn) + TypeWeights[0] * fp + TypeWeights[1] * fn + TypeWeights[2] * fpD
            + TypeWeights[3] * fnD);
    });

    public TypedCounts Add(TypedCounts other) => new(Paired + other.Paired, SameType + other.SameType,
        ByType.ToDictionary(kv => kv.Key, kv =>
        {
            var (a, b) = (kv.Value, other.ByType[kv.Key]);
            return (a.Tp + b.Tp, a.Tn + b.Tn, a.Fp + b.Fp, a.Fn + b.Fn, a.FpD + b.FpD, a.FnD + b.FnD);
        }));

    public static TypedCounts Of(InstancePairs pairs, IReadOnlyDictionary<int, int> truthTypes,
        IReadOnlyDictionary<int, int> predictionTypes, double radius, IEnumerable<int> types)
    {
        var matched = InstanceMetrics.MatchCentroids(pairs.TruthCentroids, pairs.PredictionCentroids, radius);
        int TruthType(int t) => truthTypes.GetValueOrDefault(pairs.TruthIds[t]);
        int PredType(int p) => predictionTypes.GetValueOrDefault(pairs.PredictionIds[p]);
        var pairedTruth = matched.Select(m => TruthType(m.Truth)).ToArray();
        var pairedPred = matched.Select(m => PredType(m.Prediction)).ToArray();
        var unpairedTruth = Enumerable.Range(0, pairs.TruthCount).Except(matched.Select(m => m.Truth)).Select(TruthType).ToArray();
        var unpairedPred = Enumerable.Range(0, pairs.PredictionCount).Except(matched.Select(m => m.Prediction)).Select(PredType).ToArray();
        var byType = new Dictionary<int, (int, int, int, int, int, int)>();
        foreach (int c in types)
        {
            var chosen = pairedTruth.Zip(pairedPred).Where(p => p.First == c || p.Second == c).ToArray();
            byType[c] = (chosen.Count(p => p.First == c && p.Second == c), chosen.Count(p => p.First != c && p.Second != c),
                chosen.Count(p => p.First != c && p.Second == c), chosen.Count(p => p.First == c && p.Second != c),
                unpairedPred.Count(t => t == c), unpairedTruth.Count(t => t == c));
        }
        return new TypedCounts(pairedTruth.Length, pairedTruth.Zip(pairedPred).Count(p => p.First == p.Second), byType);
    }
}

/// <summary>An instance's bounding box in pixels: first column and row, width and height.</summary>
public readonly record struct InstanceBox(int X, int Y, int Width, int Height);

/// <summary>One image's instance scores.</summary>
public sealed record InstanceScores(int TruePositives, int FalsePositives, int FalseNegatives, double DetectionQuality,
    double SegmentationQuality, double PanopticQuality, double Dice1, double Dice2, double Aji, double AjiPlus,
    int DetectedPairs, int MissedTruth, int FalseDetections, double F1);

/// <summary>
/// Nuclei instance metrics as HoVer-Net computes them (Graham et al., Medical Image Analysis 2019; metrics/stats_utils.py and
/// compute_stats.py): panoptic quality with pairs at IoU > 0.5, Dice 1 and the ensemble Dice 2, AJI and AJI+, and detection
/// F1 by Hungarian matching of centroids within a radius. Each takes the renumbered pairs of one image.
/// </summary>
public static class InstanceMetrics
{
    /// <summary>HoVer-Net's matching threshold: a pair is a true positive when IoU &gt; 0.5, which makes the matching unique.</summary>
    public const double MatchIou = 0.5;
    /// <summary>HoVer-Net's epsilon in SQ's and AJI's IoU denominators.</summary>
    const double Epsilon = 1e-6;

    public static InstanceScores Compute(LabelMap truth, LabelMap prediction, double radius) =>
        Compute(new InstancePairs(truth, prediction), truth, prediction, radius);

    /// <summary>As <see cref="Compute(LabelMap, LabelMap, double)"/> with the pairs of the two maps already built.</summary>
    public static InstanceScores Compute(InstancePairs pairs, LabelMap truth, LabelMap prediction, double radius)
    {
        var (tp, fp, fn, dq, sq, pq) = PanopticQuality(pairs);
        var (dTp, dFn, dFp, f1) = DetectionF1(pairs.TruthCentroids, pairs.PredictionCentroids, radius);
        return new InstanceScores(tp, fp, fn, dq, sq, pq, Dice1(truth, prediction), Dice2(pairs), Aji(pairs), AjiPlus(pairs),
            dTp, dFn, dFp, f1);
    }

    /// <summary>get_fast_pq: DQ = TP / (TP + FP/2 + FN/2), SQ = sum of matched IoU / (TP + 1e-6), PQ = DQ SQ.</summary>
    public static (int Tp, int Fp, int Fn, double Dq, double Sq, double Pq) PanopticQuality(InstancePairs pairs)
    {
        var pairedTruth = new HashSet<int>();
        var pairedPrediction = new HashSet<int>();
        double iouSum = 0;
        for (int t = 0; t < pairs.TruthCount; t++)
            for (int p = 0; p < pairs.PredictionCount; p++)
            {
                if (pairs.Intersections[t, p] == 0) continue;
                double iou = pairs.Intersections[t, p] / pairs.Union(t, p);
                if (iou <= MatchIou) continue;
                pairedTruth.Add(t);
                pairedPrediction.Add(p);
                iouSum += iou;
            }
        int tp = pairedTruth.Count, fp = pairs.PredictionCount - pairedPrediction.Count, fn = pairs.TruthCount - pairedTruth.Count;
        double dq = tp / (tp + 0.5 * fp + 0.5 * fn);
        double sq = iouSum / (tp + Epsilon);
        return (tp, fp, fn, dq, sq, dq * sq);
    }

    /// <summary>get_dice_1: binary Dice 2 |A n B| / (|A| + |B|) of the foregrounds.</summary>
    public static double Dice1(LabelMap truth, LabelMap prediction)
    {
        using var scope = NewDisposeScope();
        var a = tensor(truth.Labels).gt(Zero);
        var b = tensor(prediction.Labels).gt(Zero);
        double inter = a.logical_and(b).sum().item<long>();
        double total = a.sum().item<long>() + b.sum().item<long>();
        return 2 * inter / total;
    }

    /// <summary>
    /// get_dice_2, the "ensemble" Dice: 2 sum inter / sum (|g| + |p|) over every overlapping (g, p) pair. HoVer-Net divides 0
    /// by 0 when no pair overlaps; that is a complete miss, so 0 here (NaN only when both maps are empty), which keeps a
    /// cohort mean from silently dropping the worst images.
    /// </summary>
    public static double Dice2(InstancePairs pairs)
    {
        double inter = 0, markup = 0;
        for (int t = 0; t < pairs.TruthCount; t++)
            for (int p = 0; p < pairs.PredictionCount; p++)
                if (pairs.Intersections[t, p] > 0)
                {
                    inter += pairs.Intersections[t, p];
                    markup += pairs.TruthAreas[t] + pairs.PredictionAreas[p];
                }
        if (markup == 0) return pairs.TruthCount + pairs.PredictionCount == 0 ? double.NaN : 0;
        return 2 * inter / markup;
    }

    /// <summary>IoU as AJI's code computes it: inter / (union + 1e-6), 0 for pairs that do not overlap.</summary>
    static double AjiIou(InstancePairs pairs, int t, int p) =>
        pairs.Intersections[t, p] == 0 ? 0 : pairs.Intersections[t, p] / (pairs.Union(t, p) + Epsilon);

    /// <summary>
    /// get_fast_aji (Kumar et al. 2017): each truth takes its highest-IoU prediction (the first on ties; reuse allowed), truths
    /// overlapping nothing stay unpaired; AJI = sum inter / (sum union + areas of unpaired truths + areas of predictions never
    /// chosen).
    /// </summary>
    public static double Aji(InstancePairs pairs)
    {
        var chosen = new HashSet<int>();
        var pairedTruth = new HashSet<int>();
        double inter = 0, union = 0;
        for (int t = 0; t < pairs.TruthCount; t++)
        {
            int best = 0;
            double bestIou = pairs.PredictionCount > 0 ? AjiIou(pairs, t, 0) : 0;
            for (int p = 1; p < pairs.PredictionCount; p++)
            {
                double iou = AjiIou(pairs, t, p);
                if (iou > bestIou) (best, bestIou) = (p, iou);
            }
            if (bestIou <= 0) continue;
            pairedTruth.Add(t);
            chosen.Add(best);
            inter += pairs.Intersections[t, best];
            union += pairs.Union(t, best);
        }
        return inter / (union + UnpairedAreas(pairs, pairedTruth, chosen));
    }

    /// <summary>get_fast_aji_plus: one-to-one pairs by Hungarian matching on IoU, pairs with IoU 0 dropped; then as AJI.</summary>
    public static double AjiPlus(InstancePairs pairs)
    {
        var cost = new double[pairs.TruthCount, pairs.PredictionCount];
        for (int t = 0; t < pairs.TruthCount; t++)
            for (int p = 0; p < pairs.PredictionCount; p++) cost[t, p] = -AjiIou(pairs, t, p);
        var (rows, columns) = LinearAssignment.Solve(cost);
        var pairedTruth = new HashSet<int>();
        var pairedPrediction = new HashSet<int>();
        double inter = 0, union = 0;
        for (int k = 0; k < rows.Length; k++)
        {
            if (-cost[rows[k], columns[k]] <= 0) continue;
            pairedTruth.Add(rows[k]);
            pairedPrediction.Add(columns[k]);
            inter += pairs.Intersections[rows[k], columns[k]];
            union += pairs.Union(rows[k], columns[k]);
        }
        return inter / (union + UnpairedAreas(pairs, pairedTruth, pairedPrediction));
    }

    static double UnpairedAreas(InstancePairs pairs, HashSet<int> pairedTruth, HashSet<int> pairedPrediction) =>
        Enumerable.Range(0, pairs.TruthCount).Where(t => !pairedTruth.Contains(t)).Sum(t => (double)pairs.TruthAreas[t])
        + Enumerable.Range(0, pairs.PredictionCount).Where(p => !pairedPrediction.Contains(p)).Sum(p => (double)pairs.PredictionAreas[p]);

    /// <summary>
    /// Detection by centroids (HoVer-Net's pair_coordinates): Hungarian matching on Euclidean distances first, then pairs
    /// farther apart than <paramref name="radius"/> dropped; F1 = 2 TP / (2 TP + FP + FN).
    /// </summary>
    public static (int Tp, int Fn, int Fp, double F1) DetectionF1(IReadOnlyList<(double X, double Y)> truth,
        IReadOnlyList<(double X, double Y)> prediction, double radius)
    {
        var matched = MatchCentroids(truth, prediction, radius);
        int tp = matched.Count, fn = truth.Count - tp, fp = prediction.Count - tp;
        return (tp, fn, fp, 2.0 * tp / (2.0 * tp + fp + fn));
    }

    /// <summary>
    /// Typed detection (compute_stats.py's run_nuclei_type_stat on one image): centroid pairs as <see cref="DetectionF1"/>; type
    /// accuracy over the pairs; per type c, F_c = 2 (TP_c + TN_c) / (2 (TP_c + TN_c) + 2 FP_c + 2 FN_c + FP_d,c + FN_d,c) with
    /// TP/TN/FP/FN_c over the pairs where either side is c and FP_d,c / FN_d,c the unpaired predictions / truths of type c.
    /// </summary>
    /// <param name="truthTypes">Type of each truth instance by its original id (absent: 0).</param>
    public static (double TypeAccuracy, IReadOnlyDictionary<int, double> F1ByType) TypedDetection(InstancePairs pairs,
        IReadOnlyDictionary<int, int> truthTypes, IReadOnlyDictionary<int, int> predictionTypes, double radius, IEnumerable<int> types)
    {
        var counts = TypedCounts.Of(pairs, truthTypes, predictionTypes, radius, types);
        return (counts.TypeAccuracy, counts.F1ByType);
    }

    /// <summary>
    /// PanNuke's multi-class PQ of one image: PQ of the instances of each type c (NaN when the truth has none of type c), and
    /// their NaN-ignoring mean, mPQ; bPQ is PQ with types ignored.
    /// </summary>
    public static (double MultiClass, double Binary, IReadOnlyDictionary<int, double> ByType) PanNukePq(LabelMap truth,
        LabelMap prediction, IReadOnlyDictionary<int, int> truthTypes, IReadOnlyDictionary<int, int> predictionTypes,
        IEnumerable<int> types)
    {
        var byType = new Dictionary<int, double>();
        foreach (int c in types)
        {
            var t = OfType(truth, truthTypes, c);
            if (!t.Labels.Any(v => v != 0)) { byType[c] = double.NaN; continue; }
            byType[c] = PanopticQuality(new InstancePairs(t, OfType(prediction, predictionTypes, c))).Pq;
        }
        var present = byType.Values.Where(v => !double.IsNaN(v)).ToList();
        double binary = PanopticQuality(new InstancePairs(truth, prediction)).Pq;
        return (present.Count == 0 ? double.NaN : present.Average(), binary, byType);
    }

    static LabelMap OfType(LabelMap map, IReadOnlyDictionary<int, int> types, int type) =>
        map with { Labels = map.Labels.Select(id => id != 0 && types.GetValueOrDefault(id) == type ? id : 0).ToArray() };

    /// <summary>The (truth, prediction) centroid pairs within the radius after Hungarian matching on distance.</summary>
    public static List<(int Truth, int Prediction)> MatchCentroids(IReadOnlyList<(double X, double Y)> truth,
        IReadOnlyList<(double X, double Y)> prediction, double radius)
    {
        var distance = new double[truth.Count, prediction.Count];
        for (int i = 0; i < truth.Count; i++)
            for (int j = 0; j < prediction.Count; j++)
                distance[i, j] = Math.Sqrt(Math.Pow(truth[i].X - prediction[j].X, 2) + Math.Pow(truth[i].Y - prediction[j].Y, 2));
        var (rows, columns) = LinearAssignment.Solve(distance);
        return rows.Zip(columns).Where(p => distance[p.First, p.Second] <= radius).ToList();
    }
}
