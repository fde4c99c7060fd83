using System.Globalization;
using Histo.Imaging;

namespace Histo.Slides;

/// <summary>One pyramid level: its size in pixels and its downsample relative to level 0.</summary>
public sealed record SlideLevel(int Index, long Width, long Height, double Downsample);

/// <summary>An associated image (label, macro, thumbnail) stored beside the pyramid.</summary>
public sealed record AssociatedImage(string Name, long Width, long Height);

/// <summary>
/// A whole-slide image opened with OpenSlide. Thread-safe for reads: tiling and embedding read regions
/// from several threads at once through one handle.
/// </summary>
public sealed class WholeSlide : IDisposable
{
    IntPtr _handle;

    public string Path { get; }
    /// <summary>File name without extension: the slide_id of CLAM's CSVs and of every per-slide output.</summary>
    public string SlideId { get; }
    public string Vendor { get; }
    public IReadOnlyList<SlideLevel> Levels { get; }
    public IReadOnlyDictionary<string, string> Properties { get; }
    public IReadOnlyList<AssociatedImage> AssociatedImages { get; }
    /// <summary>Microns per pixel at level 0 (x, y), or null when the file does not say.</summary>
    public (double X, double Y)? Mpp { get; }
    public double? ObjectivePower { get; }

    public long Width => Levels[0].Width;
    public long Height => Levels[0].Height;

    /// <summary>Slide files the batch commands pick up from a folder.</summary>
    public static readonly string[] Extensions = [".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif"];

    public static string SlideIdOf(string path) => System.IO.Path.GetFileNameWithoutExtension(path);

    WholeSlide(string path, IntPtr handle, string vendor)
    {
        Path = path;
        SlideId = SlideIdOf(path);
        _handle = handle;
        Vendor = vendor;
        int count = OpenSlideNative.openslide_get_level_count(handle);
        var levels = new List<SlideLevel>(count);
        for (int i = 0; i < count; i++)
        {
            OpenSlideNative.openslide_get_level_dimensions(handle, i, out long w, out long h);
            levels.Add(new SlideLevel(i, w, h, OpenSlideNative.openslide_get_level_downsample(handle, i)));
        }
        Levels = levels;
        var props = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (string name in OpenSlideNative.StringArray(OpenSlideNative.openslide_get_property_names(handle)))
            props[name] = OpenSlideNative.Utf8(OpenSlideNative.openslide_get_property_value(handle, name)) ?? "";
        Properties = props;
        AssociatedImages = OpenSlideNative.StringArray(OpenSlideNative.openslide_get_associated_image_names(handle))
            .Select(n => { OpenSlideNative.openslide_get_associated_image_dimensions(handle, n, out long w,
                out long h); return new AssociatedImage(n, w, h); })
            .ToList();
        Mpp = ReadMpp(props);
        ObjectivePower = ParseDouble(props.GetValueOrDefault("openslide.objective-power"));
    }

    /// <summary>Opens a slide, or throws a <see cref="HistoException"/> whose message names the file and the fix.</summary>
    public static WholeSlide Open(string path)
    {
        if (Directory.Exists(path)) throw new HistoException($"{path}: is a folder, not a slide file; pass the slide files (or use a "
            + $"batch command that takes folders)");
        if (BrokenLink(path) is { } link) throw new HistoException($"{path}: {link}");
        if (!File.Exists(path)) throw new HistoException($"{path}: file not found; check the path");
        string? vendor;
        try { vendor = OpenSlideNative.Utf8(OpenSlideNative.openslide_detect_vendor(path)); }
        catch (DllNotFoundException e)
        {
            throw new HistoException("libopenslide.so.0 not found: install OpenSlide with 'apt-get install -y libopenslide0' (the "
                + "README's set-up scripts do this)", e);
        }
        if (vendor is null && HasTiffHeader(path))
            throw new HistoException($"{path}: has a TIFF header but OpenSlide cannot parse it ({new FileInfo(path).Length:N0} bytes): "
                + "the file is truncated or corrupt; copy it again");
        if (vendor is null)
        {
            string ext = System.IO.Path.GetExtension(path).ToLowerInvariant();
            string hint = ext == ".dcm"
                ? "DICOM whole-slide images need OpenSlide 4, this machine has 3.4; convert the slide to pyramidal TIFF (e.g. with "
                    + "'vips tiffsave --tile --pyramid')"
                : "supported formats are Aperio SVS, tiled TIFF, Hamamatsu NDPI/VMS, Leica SCN, MIRAX, Philips TIFF, Sakura, Ventana "
                    + "BIF; convert the file to pyramidal tiled TIFF";
            throw new HistoException($"{path}: not a whole-slide format OpenSlide reads; {hint}");
        }
        IntPtr handle = OpenSlideNative.openslide_open(path);
        if (handle == IntPtr.Zero)
            throw new HistoException($"{path}: OpenSlide recognised it as '{vendor}' but could not open it; the file may be truncated "
                + $"or corrupt: copy it again");
        string? error = OpenSlideNative.Utf8(OpenSlideNative.openslide_get_error(handle));
        if (error is not null)
        {
            OpenSlideNative.openslide_close(handle);
            throw new HistoException($"{path}: OpenSlide cannot read it ({error}); the file may be truncated or corrupt: copy it again");
        }
        return new WholeSlide(path, handle, vendor);
    }

    /// <summary>
    /// What is wrong with a symbolic link that leads nowhere (null for a plain file or a good link): .NET reports a link loop
    /// as an existing file and OpenSlide then as an unknown format.
    /// </summary>
    static string? BrokenLink(string path)
    {
        if (new FileInfo(path).LinkTarget is null) return null;
        // Follow the chain by hand: the kernel's ELOOP surfaces in .NET only as "not found".
        var seen = new HashSet<string>();
        string current = System.IO.Path.GetFullPath(path);
        while (new FileInfo(current).LinkTarget is { } next)
        {
            if (!seen.Add(current)) return "a symbolic link that loops (it leads back to itself); fix the link";
            current = System.IO.Path.GetFullPath(next, System.IO.Path.GetDirectoryName(current)!);
        }
        return File.Exists(current)
            || Directory.Exists(current) ? null : $"a symbolic link to {current}, which does not exist; fix the link";
    }

    /// <summary>TIFF ("II*\0", "MM\0*") or BigTIFF ("II+\0", "MM\0+") magic: SVS, NDPI, SCN, BIF and pyramidal TIFF all start so.</summary>
    static bool HasTiffHeader(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            Span<byte> b = stackalloc byte[4];
            if (stream.Read(b) < 4) return false;
            return (b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0)
                || (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43));
        }
        catch (IOException) { return false; }
    }

    static (double, double)? ReadMpp(IReadOnlyDictionary<string, string> props)
    {
        double? x = ParseDouble(props.GetValueOrDefault("openslide.mpp-x"));
        double? y = ParseDouble(props.GetValueOrDefault("openslide.mpp-y"));
        if (x > 0 && y > 0) return (x.Value, y.Value);
        // Generic TIFF: OpenSlide 3.4 exposes the resolution tags but derives no mpp from them.
        double? xr = ParseDouble(props.GetValueOrDefault("tiff.XResolution"));
        double? yr = ParseDouble(props.GetValueOrDefault("tiff.YResolution"));
        string? unit = props.GetValueOrDefault("tiff.ResolutionUnit");
        double micronsPerUnit = unit switch { "centimeter" => 1e4, "inch" => 25400, _ => 0 };
        if (micronsPerUnit > 0 && xr > 0 && yr > 0) return (micronsPerUnit / xr.Value, micronsPerUnit / yr.Value);
        return null;
    }

    static double? ParseDouble(string? s) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) ? v : null;

    IntPtr Handle => _handle != IntPtr.Zero ? _handle : throw new ObjectDisposedException(Path);

    /// <summary>
    /// Reads a region: (x, y) is the top-left corner in level-0 pixels, (width, height) the size at
    /// <paramref name="level"/>. Transparent pixels (outside the scanned area) become white, like glass.
    /// </summary>
    public RgbaImage ReadRegion(long x, long y, int level, int width, int height)
    {
        var image = new RgbaImage(width, height);
        ReadRegionInto(image.Pixels, x, y, level, width, height);
        return image;
    }

    /// <summary>As <see cref="ReadRegion"/>, into a caller's buffer of width*height*4 bytes.</summary>
    public unsafe void ReadRegionInto(Span<byte> rgba, long x, long y, int level, int width, int height)
    {
        if (level < 0 || level >= Levels.Count) throw new ArgumentOutOfRangeException(nameof(level),
            $"{Path}: level {level} does not exist (0..{Levels.Count - 1})");
        if (rgba.Length < width * height * 4) throw new ArgumentException("buffer too small");
        fixed (byte* p = rgba)
        {
            OpenSlideNative.openslide_read_region(Handle, (uint*)p, x, y, level, width, height);
            string? error = OpenSlideNative.Utf8(OpenSlideNative.openslide_get_error(Handle));
            if (error is not null) throw new HistoException($"{Path}: reading region ({x}, {y}) level {level} failed ({error}); the "
                + $"file may be truncated or corrupt");
            PixelConversions.PremultipliedBgraToRgbaOnWhite((uint*)p, width * height);
        }
    }

    /// <summary>Reads an associated image (label, macro, thumbnail) by name.</summary>
    public unsafe RgbaImage ReadAssociatedImage(string name)
    {
        var info = AssociatedImages.FirstOrDefault(a => a.Name == name)
            ?? throw new HistoException($"{Path}: no associated image '{name}' (has: "
                + $"{string.Join(", ", AssociatedImages.Select(a => a.Name))})");
        var image = new RgbaImage((int)info.Width, (int)info.Height);
        fixed (byte* p = image.Pixels)
        {
            OpenSlideNative.openslide_read_associated_image(Handle, name, (uint*)p);
            PixelConversions.PremultipliedBgraToRgbaOnWhite((uint*)p, image.Width * image.Height);
        }
        return image;
    }

    /// <summary>The level whose downsample is the largest one not above <paramref name="downsample"/> (OpenSlide's rule, with 1%
    /// tolerance for rounded level sizes such as 2.001).</summary>
    public int BestLevelForDownsample(double downsample)
    {
        int best = 0;
        foreach (var level in Levels)
            if (level.Downsample <= downsample * 1.01) best = level.Index;
        return best;
    }

    /// <summary>OpenSlide's own choice (openslide_get_best_level_for_downsample: the last level whose downsample is below the
    /// requested one, no tolerance), as Deep Zoom viewers built on OpenSlide pick their source level.</summary>
    public int OpenSlideBestLevel(double downsample) => OpenSlideNative.openslide_get_best_level_for_downsample(Handle, downsample);

    public static string LibraryVersion => OpenSlideNative.Utf8(OpenSlideNative.openslide_get_version()) ?? "unknown";

    public void Dispose()
    {
        if (_handle != IntPtr.Zero) OpenSlideNative.openslide_close(_handle);
        _handle = IntPtr.Zero;
    }
}
