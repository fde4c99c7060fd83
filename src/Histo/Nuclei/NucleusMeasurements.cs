using Histo.Imaging;
using Histo.IO;

namespace Histo.Nuclei;

/// <summary>
/// One nucleus, in level-0 pixels of its slide (or image): its outline, centroid, and QuPath's nucleus measurements.
/// </summary>
/// <param name="Outline">The outer boundary along pixel edges, corners cut (each vertex the middle of a boundary edge).</param>
/// <param name="AreaMicrons">Pixel count times the pixel area (um^2).</param>
/// <param name="PerimeterMicrons">Length of <paramref name="Outline"/> (um).</param>
/// <param name="Circularity">4 pi area / perimeter^2: 1 for a disc, lower for elongated or ragged shapes.</param>
/// <param name="Eccentricity">sqrt(1 - l2 / l1) of the pixel coordinates' covariance eigenvalues l1 &gt;= l2 (scikit-image's
/// regionprops): 0 for a disc, towards 1 for a line.</param>
/// <param name="MeanHaematoxylin">Mean haematoxylin OD over the nucleus' pixels (<see cref="ColourDeconvolution"/>).</param>
/// <param name="CellOutline">The cell's outer boundary when cells were expanded (<see cref="CellExpansion"/>), else null.</param>
/// <param name="CellAreaMicrons">The cell's area (um^2), NaN without cells.</param>
public sealed record Nucleus(double CentroidX, double CentroidY, (double X, double Y)[] Outline, double AreaMicrons,
    double PerimeterMicrons, double Circularity, double Eccentricity, double MeanHaematoxylin,
    (double X, double Y)[]? CellOutline = null, double CellAreaMicrons = double.NaN)
{
    /// <summary>The measurement names, as QuPath shows them, with their values.</summary>
    public IReadOnlyDictionary<string, double> Measurements()
    {
        var m = new Dictionary<string, double>
        {
            ["Nucleus: Area µm^2"] = AreaMicrons,
            ["Nucleus: Perimeter µm"] = PerimeterMicrons,
            ["Nucleus: Circularity"] = Circularity,
            ["Nucleus: Eccentricity"] = Eccentricity,
            ["Nucleus: Hematoxylin OD mean"] = MeanHaematoxylin,
        };
        if (CellOutline is not null)
        {
            m["Cell: Area µm^2"] = CellAreaMicrons;
            m["Nucleus/Cell area ratio"] = AreaMicrons / CellAreaMicrons;
        }
        return m;
    }
}

public static class NucleusMeasurements
{
    /// <summary>
    /// The nuclei of a segmentation of a region read at <paramref name="downsample"/> from level-0 position
    /// (<paramref name="originX"/>, <paramref name="originY"/>); <paramref name="mpp"/> is the region's pixel size. Nuclei whose
    /// <paramref name="keep"/> (centroid in region pixels) is false are skipped.
    /// </summary>
    /// <param name="cells">The nuclei's cells (same ids), whose outlines and areas are added; null: nuclei only.</param>
    public static List<Nucleus> Measure(NucleusSegmentation segmentation, double mpp, double originX = 0, double originY = 0,
        double downsample = 1, Func<double, double, bool>? keep = null, LabelMap? cells = null)
    {
        var labels = segmentation.Labels;
        int w = labels.Width, h = labels.Height, n = segmentation.Count;
        var count = new long[n + 1];
        var sx = new double[n + 1]; var sy = new double[n + 1];
        var sxx = new double[n + 1]; var syy = new double[n + 1]; var sxy = new double[n + 1];
        var od = new double[n + 1];
        var x0 = Enumerable.Repeat(int.MaxValue, n + 1).ToArray(); var y0 = Enumerable.Repeat(int.MaxValue, n + 1).ToArray();
        var x1 = new int[n + 1]; var y1 = new int[n + 1];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int l = labels.Labels[y * w + x];
                if (l == 0) continue;
                count[l]++; sx[l] += x; sy[l] += y; sxx[l] += (double)x * x; syy[l] += (double)y * y; sxy[l] += (double)x * y;
                od[l] += segmentation.Haematoxylin[y * w + x];
                x0[l] = Math.Min(x0[l], x); y0[l] = Math.Min(y0[l], y); x1[l] = Math.Max(x1[l], x); y1[l] = Math.Max(y1[l], y);
            }
        var cellBoxes = cells is null ? null : Boxes(cells, n);
        var nuclei = new List<Nucleus>(n);
        for (int l = 1; l <= n; l++)
        {
            if (count[l] == 0) continue;
            double cx = sx[l] / count[l], cy = sy[l] / count[l];
            if (keep != null && !keep(cx, cy)) continue;
            // Covariance of the pixel coordinates; its eigenvalues are the inertia ellipse's squared half-axes / 4.
            double vxx = sxx[l] / count[l] - cx * cx, vyy = syy[l] / count[l] - cy * cy, vxy = sxy[l] / count[l] - cx * cy;
            double mean = (vxx + vyy) / 2, spread = Math.Sqrt((vxx - vyy) * (vxx - vyy) / 4 + vxy * vxy);
            double l1 = mean + spread, l2 = mean - spread;
            double eccentricity = l1 > 0 ? Math.Sqrt(Math.Max(0, 1 - l2 / l1)) : 0;

            var (cut, perimeter) = Outline(labels, l, x0[l], y0[l], x1[l], y1[l]);
            double areaMicrons = count[l] * mpp * mpp, perimeterMicrons = perimeter * mpp;
            (double X, double Y)[] ToSlide((double X, double Y)[] ring, int left, int top) =>
                ring.Select(p => (originX + (left + p.X) * downsample, originY + (top + p.Y) * downsample)).ToArray();
            (double X, double Y)[]? cellOutline = null;
            double cellArea = double.NaN;
            if (cellBoxes is not null)
            {
                var b = cellBoxes[l];
                cellOutline = ToSlide(Outline(cells!, l, b.X0, b.Y0, b.X1, b.Y1).Ring, b.X0, b.Y0);
                cellArea = b.Count * mpp * mpp;
            }
            nuclei.Add(new Nucleus(originX + (cx + 0.5) * downsample, originY + (cy + 0.5) * downsample, ToSlide(cut, x0[l], y0[l]),
                areaMicrons, perimeterMicrons, 4 * Math.PI * areaMicrons / (perimeterMicrons * perimeterMicrons), eccentricity,
                od[l] / count[l], cellOutline, cellArea));
        }
        return nuclei;
    }

    /// <summary>Pixel count and bounding box of each label of a map with labels 0..n.</summary>
    static (int X0, int Y0, int X1, int Y1, long Count)[] Boxes(LabelMap map, int n)
    {
        var boxes = Enumerable.Repeat((X0: int.MaxValue, Y0: int.MaxValue, X1: -1, Y1: -1, Count: 0L), n + 1).ToArray();
        for (int y = 0; y < map.Height; y++)
            for (int x = 0; x < map.Width; x++)
            {
                int l = map.Labels[y * map.Width + x];
                if (l == 0 || l > n) continue;
                ref var b = ref boxes[l];
                b = (Math.Min(b.X0, x), Math.Min(b.Y0, y), Math.Max(b.X1, x), Math.Max(b.Y1, y), b.Count + 1);
            }
        return boxes;
    }

    /// <summary>Outer outline (corners cut, simplified) of label <paramref name="l"/> within its box, relative to the box, and
    /// its length in pixels.</summary>
    static ((double X, double Y)[] Ring, double Perimeter) Outline(LabelMap labels, int l, int left, int top, int right, int bottom)
    {
        int w = labels.Width, bw = right - left + 1, bh = bottom - top + 1;
        var mask = new byte[bw * bh];
        for (int y = 0; y < bh; y++)
            for (int x = 0; x < bw; x++)
                if (labels.Labels[(top + y) * w + left + x] == l) mask[y * bw + x] = 1;
        var rings = MaskContours.Trace(mask, bw, bh);
        // A watershed basin is 4-connected, so it has one outer ring; holes are not part of a nucleus outline. A cell can
        // split where a neighbour cuts it: its largest piece is its outline.
        var outer = rings.Select(r => r[0]).MaxBy(r => Math.Abs(MaskContours.SignedArea(r)))!;
        var cut = CutCorners(outer);
        double perimeter = 0;
        for (int i = 0; i < cut.Length; i++)
        {
            var (ax, ay) = cut[i]; var (bx, by) = cut[(i + 1) % cut.Length];
            perimeter += Math.Sqrt((bx - ax) * (bx - ax) + (by - ay) * (by - ay));
        }
        return (cut, perimeter);
    }

    /// <summary>The ring through the middles of its unit pixel edges, which removes the pixel staircase's extra length
    /// along diagonals (a disc's perimeter comes out near 2 pi r instead of 8 r); points on straight runs are dropped.
    /// Long edges are cut into unit steps first, so a straight side keeps its corners within half a pixel.</summary>
    static (double X, double Y)[] CutCorners((double X, double Y)[] ring)
    {
        var middles = new List<(double X, double Y)>();
        for (int i = 0; i < ring.Length; i++)
        {
            var a = ring[i]; var b = ring[(i + 1) % ring.Length];
            int steps = (int)Math.Round(Math.Max(Math.Abs(b.X - a.X), Math.Abs(b.Y - a.Y)));
            for (int k = 0; k < steps; k++)
            {
                double t = (k + 0.5) / steps;
                middles.Add((a.X + (b.X - a.X) * t, a.Y + (b.Y - a.Y) * t));
            }
        }
        int n = middles.Count;
        if (n < 3) return middles.ToArray();
        var cut = new List<(double X, double Y)>(n);
        for (int i = 0; i < n; i++)
        {
            var p = middles[(i + n - 1) % n]; var q = middles[i]; var r = middles[(i + 1) % n];
            double cross = (q.X - p.X) * (r.Y - q.Y) - (q.Y - p.Y) * (r.X - q.X);
            if (Math.Abs(cross) > 1e-9) cut.Add(q);
        }
        return Simplify(cut, OutlineTolerance);
    }

    /// <summary>Outlines are simplified to within this many pixels (Douglas-Peucker): it straightens the midpoints' zigzag
    /// on shallow slopes, which would otherwise add up to 8% to a perimeter (a disc of radius 20 px: 2 pi r within 1%).</summary>
    public const double OutlineTolerance = 0.5;

    /// <summary>Douglas-Peucker simplification of a closed ring (Douglas and Peucker 1973): split at the point farthest from
    /// the first, then each half keeps its farthest point while that is more than <paramref name="tolerance"/> from the chord.</summary>
    static (double X, double Y)[] Simplify(List<(double X, double Y)> ring, double tolerance)
    {
        int n = ring.Count;
        if (n < 4) return ring.ToArray();
        int far = 0;
        double best = -1;
        for (int i = 1; i < n; i++)
        {
            double d = (ring[i].X - ring[0].X) * (ring[i].X - ring[0].X) + (ring[i].Y - ring[0].Y) * (ring[i].Y - ring[0].Y);
            if (d > best) { best = d; far = i; }
        }
        var keep = new bool[n];
        keep[0] = keep[far] = true;
        var stack = new Stack<(int From, int To)>([(0, far), (far, n)]);
        while (stack.Count > 0)
        {
            var (from, to) = stack.Pop();
            var a = ring[from]; var b = ring[to % n];
            double dx = b.X - a.X, dy = b.Y - a.Y, length = Math.Sqrt(dx * dx + dy * dy);
            int worst = -1;
            double worstDistance = tolerance;
            for (int i = from + 1; i < to; i++)
            {
                double d = Math.Abs(dy * (ring[i].X - a.X) - dx * (ring[i].Y - a.Y)) / length;
                if (d > worstDistance) { worstDistance = d; worst = i; }
            }
            if (worst < 0) continue;
            keep[worst] = true;
            stack.Push((from, worst));
            stack.Push((worst, to));
        }
        return ring.Where((_, i) => keep[i]).ToArray();
    }
}
