namespace Histo.Imaging;

/// <summary>Pixel-format conversions between OpenSlide, SkiaSharp and tensors.</summary>
public static class PixelConversions
{
    /// <summary>
    /// OpenSlide returns premultiplied ARGB as native-endian uint32 (bytes B, G, R, A on x86). Converts in
    /// place to straight RGBA composited on white, since a transparent area of a slide is empty glass.
    /// </summary>
    public static unsafe void PremultipliedBgraToRgbaOnWhite(uint* pixels, int count)
    {
        for (int i = 0; i < count; i++)
        {
            uint p = pixels[i];
            uint a = p >> 24;
            uint r = (p >> 16) & 0xFF, g = (p >> 8) & 0xFF, b = p & 0xFF;
            if (a != 255)
            {
                // premultiplied over white: c + (255 - a)
                uint w = 255 - a;
                r += w; g += w; b += w;
            }
            pixels[i] = r | g << 8 | b << 16 | 0xFFu << 24;
        }
    }
}
