namespace Histo.Imaging;

/// <summary>
/// Operations on 8-bit single-channel images and binary masks (row-major, one byte per pixel) used by
/// tissue detection: median blur, Otsu's threshold, closing, hole filling, connected components. Masks
/// here are at thumbnail size (at most a few megapixels), where these linear-time passes take milliseconds.
/// </summary>
public static class BinaryMorphology
{
    /// <summary>Median filter with a k x k window (k odd), edges replicated; Huang's sliding histogram.</summary>
    public static byte[] MedianBlur(byte[] src, int width, int height, int k)
    {
        if (k < 1 || k % 2 == 0) throw new ArgumentException($"median kernel size must be odd (got {k})");
        int r = k / 2, half = k * k / 2;
        var dst = new byte[src.Length];
        Parallel.For(0, height, y =>
        {
            Span<int> hist = stackalloc int[256];
            hist.Clear();
            Span<int> rows = stackalloc int[k];
            for (int i = 0; i < k; i++) rows[i] = Math.Clamp(y - r + i, 0, height - 1) * width;
            for (int dy = -r; dy <= r; dy++)
                for (int dx = -r; dx <= r; dx++)
                    hist[src[Math.Clamp(y + dy, 0, height - 1) * width + Math.Clamp(dx, 0, width - 1)]]++;
            int med = 0, below = 0; // below = number of window values < med
            for (int x = 0; ; x++)
            {
                while (below + hist[med] <= half) { below += hist[med]; med++; }
                while (below > half) { med--; below -= hist[med]; }
                dst[y * width + x] = (byte)med;
                if (x == width - 1) break;
                int xOut = Math.Clamp(x - r, 0, width - 1), xIn = Math.Clamp(x + r + 1, 0, width - 1);
                for (int i = 0; i < k; i++)
                {
                    int row = rows[i];
                    byte o = src[row + xOut], n = src[row + xIn];
                    if (o == n) continue; // the common case in flat regions: nothing changes
                    hist[o]--; if (o < med) below--;
                    hist[n]++; if (n < med) below++;
                }
            }
        });
        return dst;
    }

    /// <summary>Otsu's threshold (Otsu 1979): the level t maximising between-class variance of values &lt;= t vs &gt; t.</summary>
    public static int OtsuThreshold(ReadOnlySpan<byte> values)
    {
        var hist = new long[256];
        foreach (byte v in values) hist[v]++;
        return OtsuThreshold(hist);
    }

    /// <summary>Otsu's threshold from a 256-bin histogram.</summary>
    public static int OtsuThreshold(long[] hist)
    {
        long total = hist.Sum();
        double sumAll = 0;
        for (int i = 0; i < 256; i++) sumAll += i * (double)hist[i];
        double sumBelow = 0, best = -1;
        long countBelow = 0;
        int threshold = 0;
        for (int t = 0; t < 256; t++)
        {
            countBelow += hist[t];
            sumBelow += t * (double)hist[t];
            long countAbove = total - countBelow;
            if (countBelow == 0 || countAbove == 0) continue;
            double meanBelow = sumBelow / countBelow, meanAbove = (sumAll - sumBelow) / countAbove;
            double between = (double)countBelow * countAbove * (meanBelow - meanAbove) * (meanBelow - meanAbove);
            if (between > best) { best = between; threshold = t; }
        }
        return threshold;
    }

    /// <summary>Dilation (max) with a k x k square; pixels outside the image count as background.</summary>
    public static byte[] Dilate(byte[] mask, int width, int height, int k) => SquareFilter(mask, width, height, k, max: true);

    /// <summary>
    /// Erosion (min) with a k x k square; pixels outside the image count as foreground (OpenCV's convention), so closing
    /// never removes tissue at the border.
    /// </summary>
    public static byte[] Erode(byte[] mask, int width, int height, int k) => SquareFilter(mask, width, height, k, max: false);

    /// <summary>Morphological closing (dilate then erode): bridges gaps narrower than k pixels.</summary>
    public static byte[] Close(byte[] mask, int width, int height, int k) => Erode(Dilate(mask, width, height, k), width, height, k);

    /// <summary>
    /// Separable k x k max or min filter. Each 1-D pass takes the extremum over windows of doubling length
    /// (1, 2, 4, ...) with whole-vector operations, then combines two overlapping power-of-two windows, so the
    /// cost grows with log k (pen-ink margins use windows of 60+ pixels).
    /// </summary>
    static byte[] SquareFilter(byte[] src, int width, int height, int k, bool max)
    {
        if (k <= 1) return (byte[])src.Clone();
        byte outside = max ? (byte)0 : (byte)255;
        int before = (k - 1) / 2;
        var horizontal = new byte[src.Length];
        Parallel.For(0, height, y =>
            WindowExtremum(src.AsSpan(y * width, width), horizontal.AsSpan(y * width, width), 1, width, k, before, max, outside));
        var dst = new byte[src.Length];
        // Vertical pass: the same on columns, done a band of columns at a time with rows as the vector lanes.
        int band = Math.Max(64, width / Environment.ProcessorCount);
        Parallel.For(0, (width + band - 1) / band, b =>
        {
            int x0 = b * band, bw = Math.Min(band, width - x0);
            var column = new byte[height * bw];
            var result = new byte[height * bw];
            for (int y = 0; y < height; y++) horizontal.AsSpan(y * width + x0, bw).CopyTo(column.AsSpan(y * bw));
            WindowExtremum(column, result, bw, height, k, before, max, outside);
            for (int y = 0; y < height; y++) result.AsSpan(y * bw, bw).CopyTo(dst.AsSpan(y * width + x0));
        });
        return dst;
    }

    /// <summary>
    /// Extremum over a window of k items starting <paramref name="before"/> items earlier, along a line of
    /// <paramref name="length"/> items each <paramref name="stride"/> bytes wide (stride &gt; 1 processes
    /// that many independent lines at once).
    /// </summary>
    static void WindowExtremum(ReadOnlySpan<byte> src, Span<byte> dst, int stride, int length, int k, int before, bool max, byte outside)
    {
        // Prepend `before` outside items, so window i of the output starts at item i of the extended line.
        int extended = length + before, n = stride * extended;
        var current = new byte[n];
        current.AsSpan(0, before * stride).Fill(outside);
        src.Slice(0, length * stride).CopyTo(current.AsSpan(before * stride));
        var next = new byte[n];
        int p = 1;
        while (p * 2 <= k)
        {
            // next[i] = ext(current[i], current[i + p]) along the line; beyond the end counts as outside.
            int shift = p * stride;
            Combine(current.AsSpan(0, n - shift), current.AsSpan(shift), next.AsSpan(0, n - shift), max);
            Combine(current.AsSpan(n - shift), outside, next.AsSpan(n - shift), max);
            (current, next) = (next, current);
            p *= 2;
        }
        // Window [i, i + k) of the extended line = ext(W_p[i], W_p[i + k - p]): two shifted views.
        Shifted(current, dst, 0, stride, length, extended, outside, copy: true, max);
        Shifted(current, dst, k - p, stride, length, extended, outside, copy: false, max);
    }

    /// <summary>
    /// dst[i] = (or ext=) w[i + offset] for i &lt; length, with items of w beyond its <paramref name="wLength"/> counted as
    /// outside.
    /// </summary>
    static void Shifted(byte[] w, Span<byte> dst, int offset, int stride, int length, int wLength, byte outside, bool copy, bool max)
    {
        int from = Math.Max(0, -offset), to = Math.Min(length, wLength - offset); // items i with 0 <= i + offset < wLength
        if (to <= from) { if (copy) dst.Fill(outside); else Combine(dst, outside, dst, max); return; }
        var inside = dst.Slice(from * stride, (to - from) * stride);
        var source = w.AsSpan((from + offset) * stride, (to - from) * stride);
        if (copy) source.CopyTo(inside); else Combine(inside, source, inside, max);
        var head = dst.Slice(0, from * stride);
        var tail = dst.Slice(to * stride);
        if (copy) { head.Fill(outside); tail.Fill(outside); }
        else { Combine(head, outside, head, max); Combine(tail, outside, tail, max); }
    }

    static void Combine(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> result, bool max)
    {
        int i = 0, v = System.Numerics.Vector<byte>.Count;
        for (; i + v <= a.Length; i += v)
        {
            var x = new System.Numerics.Vector<byte>(a.Slice(i));
            var y = new System.Numerics.Vector<byte>(b.Slice(i));
            (max ? System.Numerics.Vector.Max(x, y) : System.Numerics.Vector.Min(x, y)).CopyTo(result.Slice(i));
        }
        for (; i < a.Length; i++) result[i] = max ? Math.Max(a[i], b[i]) : Math.Min(a[i], b[i]);
    }

    static void Combine(ReadOnlySpan<byte> a, byte b, Span<byte> result, bool max)
    {
        for (int i = 0; i < a.Length; i++) result[i] = max ? Math.Max(a[i], b) : Math.Min(a[i], b);
    }

    /// <summary>Fills holes: background not 4-connected to the image border becomes foreground.</summary>
    public static byte[] FillHoles(byte[] mask, int width, int height)
    {
        var background = new byte[mask.Length];
        for (int i = 0; i < mask.Length; i++) background[i] = mask[i] == 0 ? (byte)255 : (byte)0;
        var (labels, areas) = ConnectedComponents(background, width, height, eightConnected: false);
        var touchesBorder = new bool[areas.Count];
        for (int x = 0; x < width; x++) { touchesBorder[labels[x]] = true; touchesBorder[labels[(height - 1) * width + x]] = true; }
        for (int y = 0; y < height; y++) { touchesBorder[labels[y * width]] = true; touchesBorder[labels[y * width + width - 1]] = true; }
        var filled = new byte[mask.Length];
        for (int i = 0; i < mask.Length; i++) filled[i] = labels[i] != 0 && touchesBorder[labels[i]] ? (byte)0 : (byte)255;
        return filled;
    }

    /// <summary>
    /// Labels 8-connected (or 4-connected) foreground components (1..n; 0 = background) and returns each
    /// one's pixel count (index 0 unused). Works on runs of foreground pixels: each run is joined
    /// (union-find) to the runs of the row above that touch it, so the cost follows the number of runs.
    /// </summary>
    public static (int[] Labels, List<int> Areas) ConnectedComponents(byte[] mask, int width, int height, bool eightConnected = true)
    {
        int reach = eightConnected ? 1 : 0; // how far a run above may end before this one starts and still touch
        var runStart = new List<int>(); var runEnd = new List<int>(); var runRow = new List<int>();
        var parent = new List<int>();
        int Find(int a) { while (parent[a] != a) { parent[a] = parent[parent[a]]; a = parent[a]; } return a; }
        int previousFirst = 0, previousCount = 0;
        for (int y = 0; y < height; y++)
        {
            int first = runStart.Count, row = y * width;
            for (int x = 0; x < width; x++)
            {
                if (mask[row + x] == 0) continue;
                int start = x;
                while (x < width && mask[row + x] != 0) x++;
                int id = runStart.Count;
                runStart.Add(start); runEnd.Add(x); runRow.Add(y); parent.Add(id);
                // Runs above that overlap [start - reach, x + reach) touch this one.
                for (int r = previousFirst; r < previousFirst + previousCount; r++)
                {
                    if (runEnd[r] + reach <= start || runStart[r] >= x + reach) continue;
                    int a = Find(r), b = Find(id);
                    if (a != b) parent[Math.Max(a, b)] = Math.Min(a, b);
                }
            }
            previousFirst = first;
            previousCount = runStart.Count - first;
        }
        var labels = new int[mask.Length];
        var areas = new List<int> { 0 };
        var labelOfRoot = new Dictionary<int, int>();
        for (int r = 0; r < runStart.Count; r++)
        {
            int root = Find(r);
            if (!labelOfRoot.TryGetValue(root, out int label)) { label = areas.Count; labelOfRoot[root] = label; areas.Add(0); }
            areas[label] += runEnd[r] - runStart[r];
            Array.Fill(labels, label, runRow[r] * width + runStart[r], runEnd[r] - runStart[r]);
        }
        return (labels, areas);
    }

    /// <summary>
    /// Geodesic dilation: grows <paramref name="seeds"/> through 8-connected pixels of <paramref name="allowed"/>, at most
    /// <paramref name="maxSteps"/> pixels (chessboard distance along the path) from the nearest seed. Seeds are kept
    /// whether allowed or not. A breadth-first search, so the cost follows the pixels reached.
    /// </summary>
    public static byte[] GrowWithin(byte[] seeds, byte[] allowed, int width, int height, int maxSteps)
    {
        var grown = new byte[seeds.Length];
        var frontier = new List<int>();
        for (int i = 0; i < seeds.Length; i++) if (seeds[i] != 0) { grown[i] = 255; frontier.Add(i); }
        var next = new List<int>();
        for (int step = 0; step < maxSteps && frontier.Count > 0; step++)
        {
            next.Clear();
            foreach (int i in frontier)
            {
                int x = i % width, y = i / width;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int nx = x + dx, ny = y + dy;
                        if ((uint)nx >= (uint)width || (uint)ny >= (uint)height) continue;
                        int j = ny * width + nx;
                        if (grown[j] != 0 || allowed[j] == 0) continue;
                        grown[j] = 255;
                        next.Add(j);
                    }
            }
            (frontier, next) = (next, frontier);
        }
        return grown;
    }

    /// <summary>Removes 8-connected components smaller than <paramref name="minArea"/> pixels.</summary>
    public static byte[] RemoveSmallComponents(byte[] mask, int width, int height, int minArea)
    {
        var (labels, areas) = ConnectedComponents(mask, width, height);
        var kept = new byte[mask.Length];
        for (int i = 0; i < mask.Length; i++) kept[i] = labels[i] != 0 && areas[labels[i]] >= minArea ? (byte)255 : (byte)0;
        return kept;
    }
}
