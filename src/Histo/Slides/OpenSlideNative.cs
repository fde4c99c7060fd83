using System.Runtime.InteropServices;

namespace Histo.Slides;

/// <summary>
/// P/Invoke declarations for the OpenSlide C API (Debian's libopenslide0, 3.4.1). No NuGet wrapper is
/// served for Linux, and the API is small. An openslide_t handle is safe to read from several threads.
/// </summary>
internal static unsafe partial class OpenSlideNative
{
    const string Library = "libopenslide.so.0";

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr openslide_detect_vendor(string filename);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr openslide_open(string filename);

    [LibraryImport(Library)]
    internal static partial void openslide_close(IntPtr osr);

    [LibraryImport(Library)]
    internal static partial IntPtr openslide_get_error(IntPtr osr);

    [LibraryImport(Library)]
    internal static partial int openslide_get_level_count(IntPtr osr);

    [LibraryImport(Library)]
    internal static partial void openslide_get_level_dimensions(IntPtr osr, int level, out long w, out long h);

    [LibraryImport(Library)]
    internal static partial double openslide_get_level_downsample(IntPtr osr, int level);

    [LibraryImport(Library)]
    internal static partial int openslide_get_best_level_for_downsample(IntPtr osr, double downsample);

    [LibraryImport(Library)]
    internal static partial void openslide_read_region(IntPtr osr, uint* dest, long x, long y, int level, long w, long h);

    [LibraryImport(Library)]
    internal static partial IntPtr openslide_get_property_names(IntPtr osr);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr openslide_get_property_value(IntPtr osr, string name);

    [LibraryImport(Library)]
    internal static partial IntPtr openslide_get_associated_image_names(IntPtr osr);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void openslide_get_associated_image_dimensions(IntPtr osr, string name, out long w, out long h);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void openslide_read_associated_image(IntPtr osr, string name, uint* dest);

    [LibraryImport(Library)]
    internal static partial IntPtr openslide_get_version();

    internal static string? Utf8(IntPtr p) => p == IntPtr.Zero ? null : Marshal.PtrToStringUTF8(p);

    /// <summary>Reads a NULL-terminated array of C strings.</summary>
    internal static List<string> StringArray(IntPtr p)
    {
        var list = new List<string>();
        if (p == IntPtr.Zero) return list;
        for (int i = 0; ; i++)
        {
            IntPtr s = Marshal.ReadIntPtr(p, i * IntPtr.Size);
            if (s == IntPtr.Zero) break;
            list.Add(Marshal.PtrToStringUTF8(s)!);
        }
        return list;
    }
}
