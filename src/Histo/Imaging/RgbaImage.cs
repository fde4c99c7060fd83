using SkiaSharp;

namespace Histo.Imaging;

/// <summary>
/// An 8-bit RGBA image in row-major interleaved layout (R, G, B, A per pixel), the layout SkiaSharp
/// draws into and encodes from. Slide pixels are opaque (A = 255).
/// </summary>
public sealed class RgbaImage
{
    public int Width { get; }
    public int Height { get; }
    public byte[] Pixels { get; }

    public RgbaImage(int width, int height, byte[]? pixels = null)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"image size {width}x{height} must be positive");
        Width = width;
        Height = height;
        Pixels = pixels ?? new byte[checked(width * height * 4)];
        if (Pixels.Length != width * height * 4) throw new ArgumentException($"pixel buffer has {Pixels.Length} bytes, expected {width * height * 4}");
    }

    public static RgbaImage Filled(int width, int height, byte r, byte g, byte b)
    {
        var image = new RgbaImage(width, height);
        uint packed = (uint)(r | g << 8 | b << 16 | 0xFF << 24);
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(image.Pixels.AsSpan()).Fill(packed);
        return image;
    }

    /// <summary>
    /// A SkiaSharp bitmap holding a copy of the pixels. A copy, not a view: a view needs the managed array pinned until Skia's
    /// release callback runs, and a bitmap view was the prime suspect in a managed-heap corruption seen under parallel
    /// resizing (issue 10); the copy costs one memcpy per call.
    /// </summary>
    internal SKBitmap AsBitmap()
    {
        var bitmap = new SKBitmap(new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        System.Runtime.InteropServices.Marshal.Copy(Pixels, 0, bitmap.GetPixels(), Pixels.Length);
        return bitmap;
    }

    /// <summary>Draws on the image with a SkiaSharp canvas (on a copy, written back when the drawing is done).</summary>
    internal void Draw(Action<SKCanvas> draw)
    {
        using var bitmap = AsBitmap();
        using (var canvas = new SKCanvas(bitmap))
        {
            draw(canvas);
            canvas.Flush();
        }
        System.Runtime.InteropServices.Marshal.Copy(bitmap.GetPixels(), Pixels, 0, Pixels.Length);
    }

    public static RgbaImage FromBitmap(SKBitmap bitmap)
    {
        using var converted = bitmap.ColorType == SKColorType.Rgba8888 && bitmap.AlphaType != SKAlphaType.Premul
            ? bitmap.Copy() : bitmap.Copy(SKColorType.Rgba8888);
        var image = new RgbaImage(converted.Width, converted.Height);
        System.Runtime.InteropServices.Marshal.Copy(converted.GetPixels(), image.Pixels, 0, image.Pixels.Length);
        return image;
    }

    /// <summary>Resizes with area-aware filtering (mipmapped linear for downscaling, cubic for upscaling).</summary>
    public RgbaImage Resize(int width, int height)
    {
        if (width == Width && height == Height) return new RgbaImage(Width, Height, (byte[])Pixels.Clone());
        using var source = AsBitmap();
        using var targetBitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var sampling = width < Width || height < Height
            ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear)
            : new SKSamplingOptions(SKCubicResampler.Mitchell);
        using var sourceImage = SKImage.FromBitmap(source);
        using (var canvas = new SKCanvas(targetBitmap))
        using (var paint = new SKPaint())
        {
            canvas.DrawImage(sourceImage, new SKRect(0, 0, width, height), sampling, paint);
            canvas.Flush();
        }
        var target = new RgbaImage(width, height);
        System.Runtime.InteropServices.Marshal.Copy(targetBitmap.GetPixels(), target.Pixels, 0, target.Pixels.Length);
        return target;
    }

    /// <summary>Loads PNG, JPEG, WebP, BMP or GIF (SkiaSharp) or TIFF (LibTiff.NET), as tile datasets ship both.</summary>
    public static RgbaImage Load(string path)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: image not found; check the path");
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is ".tif" or ".tiff") return LoadTiff(path);
        using var bitmap = SKBitmap.Decode(path)
            ?? throw new HistoException($"{path}: not an image Histo can decode (PNG, JPEG, TIFF, WebP, BMP, GIF); check the file");
        return FromBitmap(bitmap);
    }

    static RgbaImage LoadTiff(string path)
    {
        using var tiff = BitMiracle.LibTiff.Classic.Tiff.Open(path, "r")
            ?? throw new HistoException($"{path}: not a readable TIFF; check the file");
        int width = tiff.GetField(BitMiracle.LibTiff.Classic.TiffTag.IMAGEWIDTH)[0].ToInt();
        int height = tiff.GetField(BitMiracle.LibTiff.Classic.TiffTag.IMAGELENGTH)[0].ToInt();
        var raster = new int[width * height];
        // ReadRGBAImageOriented converts any photometric/compression to ABGR-packed ints, top row first.
        if (!tiff.ReadRGBAImageOriented(width, height, raster, BitMiracle.LibTiff.Classic.Orientation.TOPLEFT))
            throw new HistoException($"{path}: TIFF could not be decoded; check the file");
        var image = new RgbaImage(width, height);
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(raster.AsSpan()).CopyTo(image.Pixels); // little-endian ABGR int = R,G,B,A bytes
        return image;
    }

    /// <summary>Encodes to PNG or JPEG (by extension) and writes atomically.</summary>
    public void Save(string path, int jpegQuality = 90)
    {
        using var bitmap = AsBitmap();
        using var pixmap = bitmap.PeekPixels();
        bool jpeg = path.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase);
        using SKData data = jpeg
            ? pixmap.Encode(new SKJpegEncoderOptions(jpegQuality, SKJpegEncoderDownsample.Downsample420, SKJpegEncoderAlphaOption.Ignore))
            : pixmap.Encode(new SKPngEncoderOptions(SKPngEncoderFilterFlags.AllFilters, 6));
        IO.AtomicFile.WriteAllBytes(path, data.Span);
    }

    /// <summary>JPEG bytes, encoded straight from the pixel array (no bitmap copy: a viewer encodes every tile it serves).</summary>
    public unsafe byte[] EncodeJpeg(int quality)
    {
        var info = new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        fixed (byte* p = Pixels)
        {
            using var pixmap = new SKPixmap(info, (IntPtr)p, Width * 4);
            using SKData data = pixmap.Encode(new SKJpegEncoderOptions(quality, SKJpegEncoderDownsample.Downsample420,
                SKJpegEncoderAlphaOption.Ignore));
            return data.ToArray();
        }
    }
}
