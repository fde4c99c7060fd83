namespace Histo.Evaluation;

/// <summary>
/// One image for COCO evaluation: the IoU of every (prediction, truth) pair and the predictions' scores. Only pairs that
/// overlap are listed (IoU 0 never matches at a threshold of 0.5 or more); predictions keep their input order, which breaks
/// ties between equal scores as COCO's stable sort does.
/// </summary>
public sealed record CocoImage(int TruthCount, IReadOnlyList<double> Scores, IReadOnlyList<IReadOnlyList<(int Truth, double Iou)>> Overlaps)
{
    /// <summary>Mask IoU of the renumbered instances (pixel counts), predictions in id order.</summary>
    public static CocoImage Masks(InstancePairs pairs, IReadOnlyList<double> scores) =>
        From(pairs, scores, (t, p) => pairs.Intersections[t, p] == 0 ? 0 : pairs.Intersections[t, p] / pairs.Union(t, p));

    /// <summary>Box IoU as COCO's bbIou: boxes [x, y, w, h] with w = last column - first column + 1.</summary>
    public static CocoImage Boxes(InstancePairs pairs, IReadOnlyList<double> scores) =>
        From(pairs, scores, (t, p) => BoxIou(pairs.PredictionBoxes[p], pairs.TruthBoxes[t]));

    static CocoImage From(InstancePairs pairs, IReadOnlyList<double> scores, Func<int, int, double> iou)
    {
        if (scores.Count != pairs.PredictionCount)
            throw new ArgumentException($"{scores.Count} scores for {pairs.PredictionCount} predictions", nameof(scores));
        var overlaps = new List<(int, double)>[pairs.PredictionCount];
        for (int p = 0; p < pairs.PredictionCount; p++)
        {
            overlaps[p] = [];
            for (int t = 0; t < pairs.TruthCount; t++)
            {
                // Boxes can overlap where masks do not, so the box test decides which pairs to look at.
                if (BoxIou(pairs.PredictionBoxes[p], pairs.TruthBoxes[t]) == 0) continue;
                double v = iou(t, p);
                if (v > 0) overlaps[p].Add((t, v));
            }
        }
        return new CocoImage(pairs.TruthCount, scores, overlaps);
    }

    static double BoxIou(InstanceBox d, InstanceBox g)
    {
        double w = Math.Min(d.X + d.Width, g.X + g.Width) - Math.Max(d.X, g.X);
        if (w <= 0) return 0;
        double h = Math.Min(d.Y + d.Height, g.Y + g.Height) - Math.Max(d.Y, g.Y);
        if (h <= 0) return 0;
        double i = w * h;
        return i / ((double)d.Width * d.Height + (double)g.Width * g.Height - i);
    }
}

/// <summary>AP over IoU 0.50:0.05:0.95, AP at 0.50 and 0.75, AR (mean over thresholds of the final recall), and AP per threshold.
/// NaN where the images hold no truth (COCO's -1).</summary>
public sealed record CocoScores(double Ap, double Ap50, double Ap75, double Ar, IReadOnlyList<double> ApByThreshold)
{
    public static readonly CocoScores Undefined = new(double.NaN, double.NaN, double.NaN, double.NaN,
        CocoAveragePrecision.IouThresholds.Select(_ => double.NaN).ToArray());
}

/// <summary>
/// COCO-style average precision (Lin et al., ECCV 2014; pycocotools' COCOeval) for one category, area range "all" and no
/// crowd regions, as nuclei label maps give. Per image, detections by score (stable), cut to maxDets, each taking the
/// unmatched truth of highest IoU &gt;= t (the later one on ties); over the images, precision/recall from cumulative
/// matches, the precision envelope read at 101 recall points.
/// </summary>
public static class CocoAveragePrecision
{
    /// <summary>np.linspace(.5, .95, 10) and np.linspace(0, 1, 101), computed as NumPy does so that edge IoUs compare alike.</summary>
    public static readonly double[] IouThresholds = Linspace(0.5, 0.95, 10);
    public static readonly double[] RecallThresholds = Linspace(0, 1, 101);
    /// <summary>COCO's maxDets of 100 would cut a 1000 px tile's 500-700 nuclei; dense nuclei need thousands.</summary>
    public const int DenseMaxDetections = 3000;
    const int Threshold50 = 0, Threshold75 = 5;
    /// <summary>NumPy's np.spacing(1), COCO's guard in tp / (tp + fp + eps).</summary>
    const double Spacing = 2.220446049250313e-16;

    static double[] Linspace(double start, double stop, int count)
    {
        double step = (stop - start) / (count - 1);
        var values = Enumerable.Range(0, count).Select(i => i * step + start).ToArray();
        values[^1] = stop;
        return values;
    }

    /// <summary>Per image: the kept detections' scores in score order and, per threshold, whether each was matched.</summary>
    sealed record ImageMatches(double[] Scores, bool[][] Matched, int TruthCount);

    static ImageMatches Match(CocoImage image, int maxDetections)
    {
        var order = Enumerable.Range(0, image.Scores.Count).OrderByDescending(p => image.Scores[p]).Take(maxDetections).ToArray();
        var matched = new bool[IouThresholds.Length][];
        for (int k = 0; k < IouThresholds.Length; k++)
        {
            matched[k] = new bool[order.Length];
            var taken = new bool[image.TruthCount];
            for (int d = 0; d < order.Length; d++)
            {
                double best = Math.Min(IouThresholds[k], 1 - 1e-10);
                int truth = -1;
                foreach (var (t, iou) in image.Overlaps[order[d]])   // in truth order
                {
                    if (taken[t] || iou < best) continue;
                    (best, truth) = (iou, t);
                }
                if (truth < 0) continue;
                taken[truth] = true;
                matched[k][d] = true;
            }
        }
        return new ImageMatches(order.Select(p => image.Scores[p]).ToArray(), matched, image.TruthCount);
    }

    /// <summary>The dataset's AP: detections of every image ranked together.</summary>
    public static CocoScores Evaluate(IReadOnlyList<CocoImage> images, int maxDetections = DenseMaxDetections)
    {
        if (maxDetections < 1) throw new ArgumentOutOfRangeException(nameof(maxDetections));
        var perImage = images.Where(i => i.TruthCount + i.Scores.Count > 0).Select(i => Match(i, maxDetections)).ToList();
        int truths = perImage.Sum(m => m.TruthCount);
        if (truths == 0) return CocoScores.Undefined;
        var scores = perImage.SelectMany(m => m.Scores).ToArray();
        var rank = Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ToArray();   // stable, as mergesort
        int thresholds = IouThresholds.Length, points = RecallThresholds.Length;
        var apByThreshold = new double[thresholds];
        var ap50 = 0.0;
        var ap75 = 0.0;
        double recallSum = 0;
        for (int k = 0; k < thresholds; k++)
        {
            var matched = perImage.SelectMany(m => m.Matched[k]).ToArray();
            int n = rank.Length;
            var precision = new double[n];
            var recall = new double[n];
            double tp = 0, fp = 0;
            for (int i = 0; i < n; i++)
            {
                if (matched[rank[i]]) tp++; else fp++;
                recall[i] = tp / truths;
                precision[i] = tp / (fp + tp + Spacing);
            }
            recallSum += n > 0 ? recall[^1] : 0;
            for (int i = n - 1; i > 0; i--) precision[i - 1] = Math.Max(precision[i - 1], precision[i]);
            double sum = 0;
            int at = 0;
            for (int r = 0; r < points; r++)
            {
                while (at < n && recall[at] < RecallThresholds[r]) at++;   // searchsorted(recall, r, side='left')
                if (at < n) sum += precision[at];
            }
            apByThreshold[k] = sum / points;
            if (k == Threshold50) ap50 = apByThreshold[k];
            if (k == Threshold75) ap75 = apByThreshold[k];
        }
        return new CocoScores(apByThreshold.Average(), ap50, ap75, recallSum / thresholds, apByThreshold);
    }

}
