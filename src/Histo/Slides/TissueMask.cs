using Histo.Imaging;
using SkiaSharp;

namespace Histo.Slides;

/// <summary>
/// A binary tissue mask over a whole slide at thumbnail resolution, with the thumbnail it was computed on.
/// One mask pixel covers <see cref="ScaleX"/> x <see cref="ScaleY"/> level-0 pixels.
/// </summary>
public sealed class TissueMask
{
    readonly int[] _integral; // (Width+1) x (Height+1) summed-area table of the mask (0/1)

    public byte[] Mask { get; }
    public int Width { get; }
    public int Height { get; }
    public double ScaleX { get; }
    public double ScaleY { get; }
    /// <summary>The saturation threshold used (Otsu's, floored).</summary>
    public int Threshold { get; }
    public RgbaImage Thumbnail { get; }
    /// <summary>Pen and marker ink found on the thumbnail (255), cut from <see cref="Mask"/> unless it was kept.</summary>
    public byte[] Ink { get; }

    public TissueMask(byte[] mask, int width, int height, double scaleX, double scaleY, int threshold, RgbaImage thumbnail,
        byte[]? ink = null)
    {
        Mask = mask; Width = width; Height = height; ScaleX = scaleX; ScaleY = scaleY; Threshold = threshold; Thumbnail = thumbnail;
        Ink = ink ?? new byte[mask.Length];
        _integral = new int[(width + 1) * (height + 1)];
        for (int y = 0; y < height; y++)
        {
            int rowSum = 0;
            for (int x = 0; x < width; x++)
            {
                rowSum += mask[y * width + x] != 0 ? 1 : 0;
                _integral[(y + 1) * (width + 1) + x + 1] = _integral[y * (width + 1) + x + 1] + rowSum;
            }
        }
    }

    /// <summary>Fraction of the whole mask that is tissue.</summary>
    public double TissueFraction => _integral[^1] / ((double)Width * Height);

    /// <summary>
    /// Exact tissue fraction of a level-0 rectangle, treating each mask pixel as a uniform square: the
    /// summed-area table is bilinear between lattice points, so fractional pixel coverage is exact.
    /// </summary>
    public double Fraction(double x0, double y0, double x1, double y1)
    {
        double mx0 = Math.Clamp(x0 / ScaleX, 0, Width), mx1 = Math.Clamp(x1 / ScaleX, 0, Width);
        double my0 = Math.Clamp(y0 / ScaleY, 0, Height), my1 = Math.Clamp(y1 / ScaleY, 0, Height);
        double area = (x1 - x0) / ScaleX * ((y1 - y0) / ScaleY);
        if (area <= 0) return 0;
        double sum = Area(mx1, my1) - Area(mx0, my1) - Area(mx1, my0) + Area(mx0, my0);
        return Math.Clamp(sum / area, 0, 1);
    }

    double Area(double x, double y)
    {
        int ix = Math.Min((int)x, Width - 1), iy = Math.Min((int)y, Height - 1);
        double fx = x - ix, fy = y - iy;
        int stride = Width + 1;
        double a = _integral[iy * stride + ix], b = _integral[iy * stride + ix + 1];
        double c = _integral[(iy + 1) * stride + ix], d = _integral[(iy + 1) * stride + ix + 1]; // exact in double
        return a + (b - a) * fx + (c - a) * fy + (d - b - c + a) * fx * fy;
    }

    /// <summary>The mask as a black-and-white image.</summary>
    public RgbaImage ToImage()
    {
        var image = new RgbaImage(Width, Height);
        for (int i = 0; i < Mask.Length; i++)
        {
            byte v = Mask[i] != 0 ? (byte)255 : (byte)0;
            image.Pixels[4 * i] = image.Pixels[4 * i + 1] = image.Pixels[4 * i + 2] = v;
            image.Pixels[4 * i + 3] = 255;
        }
        return image;
    }

    /// <summary>Fraction of the whole thumbnail that is ink.</summary>
    public double InkFraction => Ink.Count(v => v != 0) / ((double)Width * Height);

    /// <summary>Tissue polygons in level-0 pixel coordinates (outer ring, then holes).</summary>
    public IReadOnlyList<IReadOnlyList<(double X, double Y)[]>> Polygons() => Level0Polygons(Mask);

    /// <summary>Ink polygons in level-0 pixel coordinates (outer ring, then holes).</summary>
    public IReadOnlyList<IReadOnlyList<(double X, double Y)[]>> InkPolygons() => Level0Polygons(Ink);

    IReadOnlyList<IReadOnlyList<(double X, double Y)[]>> Level0Polygons(byte[] mask) =>
        MaskContours.Trace(mask, Width, Height)
            .Select(p => (IReadOnlyList<(double X, double Y)[]>)p
                .Select(ring => ring.Select(v => (v.X * ScaleX, v.Y * ScaleY)).ToArray()).ToList())
            .ToList();

    /// <summary>
    /// The thumbnail with tissue tinted green and outlined and ink tinted blue and outlined, for a person to check the
    /// mask; background is left as it is.
    /// </summary>
    public RgbaImage Overlay()
    {
        var overlay = new RgbaImage(Width, Height, (byte[])Thumbnail.Pixels.Clone());
        var p = overlay.Pixels;
        for (int i = 0; i < Mask.Length; i++)
        {
            if (Ink[i] != 0) Tint(p, i, InkTint);
            else if (Mask[i] != 0) Tint(p, i, TissueTint);
        }
        overlay.Draw(canvas =>
        {
            Outline(canvas, Mask, new SKColor(0, 110, 0));
            Outline(canvas, Ink, new SKColor(0, 40, 200));
        });
        return overlay;
    }

    static readonly (byte R, byte G, byte B) TissueTint = (0, 255, 0), InkTint = (40, 90, 255);

    static void Tint(byte[] p, int i, (byte R, byte G, byte B) tint)
    {
        p[4 * i] = (byte)(p[4 * i] * 0.7 + tint.R * 0.3);
        p[4 * i + 1] = (byte)(p[4 * i + 1] * 0.7 + tint.G * 0.3);
        p[4 * i + 2] = (byte)(p[4 * i + 2] * 0.7 + tint.B * 0.3);
    }

    void Outline(SKCanvas canvas, byte[] mask, SKColor colour)
    {
        using var paint = new SKPaint { Color = colour, Style = SKPaintStyle.Stroke, StrokeWidth = Math.Max(1, Width / 500f),
            IsAntialias = true };
        foreach (var polygon in MaskContours.Trace(mask, Width, Height))
            foreach (var ring in polygon)
            {
                using var path = new SKPath();
                path.MoveTo((float)ring[0].X, (float)ring[0].Y);
                foreach (var v in ring.Skip(1)) path.LineTo((float)v.X, (float)v.Y);
                path.Close();
                canvas.DrawPath(path, paint);
            }
    }
}
