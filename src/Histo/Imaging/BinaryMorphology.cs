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
                for (int dy = -r; dy <= r; dy++)
                {
                    int row = Math.Clamp(y + dy, 0, height - 1) * width;
                    byte o = src[row + xOut], i = src[row + xIn];
                    hist[o]--; if (o < med) below--;
                    hist[i]++; if (i < med) below++;
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

    /// <summary>Binary dilation with a k x k square (any foreground pixel in the window).</summary>
    public static byte[] Dilate(byte[] mask, int width, int height, int k) => SquareFilter(mask, width, height, k);

    /// <summary>
    /// Binary erosion with a k x k square: the complement of dilating the complement, so pixels outside the
    /// image count as foreground (OpenCV's convention) and closing never removes tissue at the image border.
    /// </summary>
    public static byte[] Erode(byte[] mask, int width, int height, int k)
    {
        var complement = new byte[mask.Length];
        for (int i = 0; i < mask.Length; i++) complement[i] = mask[i] != 0 ? (byte)0 : (byte)255;
        var dilated = SquareFilter(complement, width, height, k);
        for (int i = 0; i < dilated.Length; i++) dilated[i] = dilated[i] != 0 ? (byte)0 : (byte)255;
        return dilated;
    }

    /// <summary>Morphological closing (dilate then erode): bridges gaps narrower than k pixels.</summary>
    public static byte[] Close(byte[] mask, int width, int height, int k) => Erode(Dilate(mask, width, height, k), width, height, k);

    /// <summary>
    /// Separable square dilation of a binary mask by running counts of foreground pixels in the window, so the
    /// cost does not grow with k (pen-ink margins use windows of 60+ pixels).
    /// </summary>
    static byte[] SquareFilter(byte[] src, int width, int height, int k)
    {
        if (k <= 1) return (byte[])src.Clone();
        int before = (k - 1) / 2, after = k / 2;
        var horizontal = new int[src.Length];
        Parallel.For(0, height, y =>
        {
            int row = y * width, count = 0;
            for (int x = 0; x < Math.Min(after, width); x++) count += src[row + x] != 0 ? 1 : 0;
            for (int x = 0; x < width; x++)
            {
                int add = x + after, remove = x - before - 1;
                if (add < width && src[row + add] != 0) count++;
                if (remove >= 0 && src[row + remove] != 0) count--;
                horizontal[row + x] = count;
            }
        });
        var dst = new byte[src.Length];
        // Column pass over the row counts, one row at a time (cache-friendly): the window's total is the
        // number of foreground pixels in the k x k square.
        var total = new int[width];
        for (int y = 0; y < Math.Min(after, height); y++)
            for (int x = 0; x < width; x++) total[x] += horizontal[y * width + x];
        for (int y = 0; y < height; y++)
        {
            int add = y + after, remove = y - before - 1;
            if (add < height) for (int x = 0, o = add * width; x < width; x++) total[x] += horizontal[o + x];
            if (remove >= 0) for (int x = 0, o = remove * width; x < width; x++) total[x] -= horizontal[o + x];
            int row = y * width;
            for (int x = 0; x < width; x++) dst[row + x] = total[x] > 0 ? (byte)255 : (byte)0;
        }
        return dst;
    }

    /// <summary>Fills holes: background not 4-connected to the image border becomes foreground.</summary>
    public static byte[] FillHoles(byte[] mask, int width, int height)
    {
        var outside = new bool[mask.Length];
        var queue = new int[mask.Length];
        int head = 0, tail = 0;
        void Seed(int i) { if (mask[i] == 0 && !outside[i]) { outside[i] = true; queue[tail++] = i; } }
        for (int x = 0; x < width; x++) { Seed(x); Seed((height - 1) * width + x); }
        for (int y = 0; y < height; y++) { Seed(y * width); Seed(y * width + width - 1); }
        while (head < tail)
        {
            int i = queue[head++], x = i % width, y = i / width;
            if (x > 0) Seed(i - 1);
            if (x < width - 1) Seed(i + 1);
            if (y > 0) Seed(i - width);
            if (y < height - 1) Seed(i + width);
        }
        var filled = new byte[mask.Length];
        for (int i = 0; i < mask.Length; i++) filled[i] = outside[i] ? (byte)0 : (byte)255;
        return filled;
    }

    /// <summary>Labels 8-connected foreground components (1..n; 0 = background) and returns each one's pixel count (index 0 unused).</summary>
    public static (int[] Labels, List<int> Areas) ConnectedComponents(byte[] mask, int width, int height)
    {
        var labels = new int[mask.Length];
        var areas = new List<int> { 0 };
        var stack = new int[mask.Length];
        int top = 0;
        for (int start = 0; start < mask.Length; start++)
        {
            if (mask[start] == 0 || labels[start] != 0) continue;
            int label = areas.Count, area = 0;
            labels[start] = label;
            stack[top++] = start;
            while (top > 0)
            {
                int i = stack[--top], x = i % width, y = i / width;
                area++;
                for (int dy = -1; dy <= 1; dy++)
                {
                    int yy = y + dy;
                    if (yy < 0 || yy >= height) continue;
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int xx = x + dx;
                        if (xx < 0 || xx >= width) continue;
                        int j = yy * width + xx;
                        if (mask[j] != 0 && labels[j] == 0) { labels[j] = label; stack[top++] = j; }
                    }
                }
            }
            areas.Add(area);
        }
        return (labels, areas);
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
