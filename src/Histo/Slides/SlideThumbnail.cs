using Histo.Imaging;

namespace Histo.Slides;

/// <summary>Reads a low-resolution view of a whole slide with bounded memory.</summary>
public static class SlideThumbnail
{
    const long MaxBandBytes = 32L << 20;

    /// <summary>
    /// A thumbnail whose longest side is at most <paramref name="longestSide"/>: read from the coarsest level
    /// that is still at least that large, in bands of rows read in parallel, each band area-averaged
    /// (binned) into its thumbnail rows. Never upsamples.
    /// </summary>
    public static RgbaImage Read(WholeSlide slide, int longestSide)
    {
        double scale = Math.Max(1.0, Math.Max(slide.Width, slide.Height) / (double)longestSide);
        int tw = Math.Max(1, (int)Math.Round(slide.Width / scale)), th = Math.Max(1, (int)Math.Round(slide.Height / scale));
        var level = slide.Levels.Last(l => l.Width >= tw && l.Height >= th);
        int lw = (int)level.Width, lh = (int)level.Height;
        var thumb = new RgbaImage(tw, th);
        double fy = (double)lh / th;
        // Several bands per core so OpenSlide decodes tiles on every core, each band within a memory bound.
        long byMemory = MaxBandBytes / ((long)lw * 4 * Math.Max(1, (long)Math.Ceiling(fy)));
        int rowsPerBand = (int)Math.Clamp(Math.Min(byMemory, (th + 4 * Environment.ProcessorCount - 1) / (4 * Environment.ProcessorCount)), 1, th);
        int bands = (th + rowsPerBand - 1) / rowsPerBand;
        Parallel.For(0, bands, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, band =>
        {
            int ty0 = band * rowsPerBand, ty1 = Math.Min(th, ty0 + rowsPerBand);
            int sy0 = (int)Math.Floor(ty0 * fy), sy1 = Math.Min(lh, (int)Math.Floor(ty1 * fy));
            if (ty1 == th) sy1 = lh;
            int rows = sy1 - sy0;
            long y0 = (long)Math.Round(sy0 * level.Downsample);
            if (lw == tw && lh == th)
            {
                // The level is the thumbnail: read straight into it.
                slide.ReadRegionInto(thumb.Pixels.AsSpan(ty0 * tw * 4, (ty1 - ty0) * tw * 4), 0, y0, level.Index, lw, ty1 - ty0);
                return;
            }
            var src = new byte[(long)lw * rows * 4];
            slide.ReadRegionInto(src, 0, y0, level.Index, lw, rows);
            BinInto(src, lw, rows, sy0, thumb, ty0, ty1, (double)lw / tw, fy);
        });
        return thumb;
    }

    /// <summary>Area-averages source rows [sy0, sy0+rows) into thumbnail rows [ty0, ty1).</summary>
    static void BinInto(byte[] src, int sw, int rows, int sy0, RgbaImage thumb, int ty0, int ty1, double fx, double fy)
    {
        int tw = thumb.Width;
        var sums = new long[tw * 3];
        var counts = new int[tw];
        var xBin = new int[sw];
        for (int sx = 0; sx < sw; sx++) xBin[sx] = Math.Min(tw - 1, (int)(sx / fx));
        for (int ty = ty0; ty < ty1; ty++)
        {
            Array.Clear(sums);
            Array.Clear(counts);
            int a = Math.Max(0, (int)Math.Floor(ty * fy) - sy0), b = Math.Min(rows, (ty + 1 == thumb.Height ? rows + sy0 : (int)Math.Floor((ty + 1) * fy)) - sy0);
            for (int sy = a; sy < Math.Max(b, a + 1) && sy < rows; sy++)
            {
                int row = sy * sw * 4;
                for (int sx = 0; sx < sw; sx++)
                {
                    int t = xBin[sx], o = row + sx * 4;
                    sums[3 * t] += src[o]; sums[3 * t + 1] += src[o + 1]; sums[3 * t + 2] += src[o + 2];
                    counts[t]++;
                }
            }
            for (int tx = 0; tx < tw; tx++)
            {
                int c = Math.Max(1, counts[tx]), o = (ty * tw + tx) * 4;
                thumb.Pixels[o] = (byte)((sums[3 * tx] + c / 2) / c);
                thumb.Pixels[o + 1] = (byte)((sums[3 * tx + 1] + c / 2) / c);
                thumb.Pixels[o + 2] = (byte)((sums[3 * tx + 2] + c / 2) / c);
                thumb.Pixels[o + 3] = 255;
            }
        }
    }
}
