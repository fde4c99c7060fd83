using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Histo.IO;

/// <summary>An instance label map: 0 background, other values instance ids, row-major [Height, Width].</summary>
public sealed record LabelMap(int Width, int Height, int[] Labels)
{
    public int this[int y, int x] => Labels[y * Width + x];
}

/// <summary>
/// Reads instance label maps as nuclei datasets ship them: PNG with 8- or 16-bit grey ids (MoNuSeg, CoNSeP exports; SkiaSharp
/// would reduce 16-bit ids to 8 bits, so PNG is decoded here), TIFF (grey, 8/16/32-bit), and NumPy .npy (integer, 2-D, as
/// HoVer-Net saves them).
/// </summary>
public static class LabelMapFile
{
    public static LabelMap Read(string path)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: label map not found; check the path");
        try
        {
            return Path.GetExtension(path).ToLowerInvariant() switch
            {
                ".png" => ReadPng(path),
                ".npy" => ReadNpy(path),
                ".tif" or ".tiff" => ReadTiff(path),
                var ext => throw new HistoException($"{path}: label maps are read from .png, .tif or .npy, not '{ext}'"),
            };
        }
        catch (Exception e) when (e is not HistoException)
        {
            throw new HistoException($"{path}: not a readable label map ({e.Message}); write ids as a 16-bit grey PNG, a TIFF or a "
                + ".npy array", e);
        }
    }

    /// <summary>
    /// Writes ids as a 16-bit grey PNG (what MoNuSeg/CoNSeP exports and <see cref="Read"/> take), atomically. Ids above 65535
    /// cannot be stored and are refused.
    /// </summary>
    public static void WritePng(string path, LabelMap map)
    {
        int max = map.Labels.Length == 0 ? 0 : map.Labels.Max();
        if (max > ushort.MaxValue) throw new HistoException($"{path}: {max} nuclei do not fit a 16-bit label map; write smaller regions");
        var raw = new byte[map.Height * (1 + 2 * map.Width)];
        for (int y = 0, o = 0; y < map.Height; y++)
        {
            raw[o++] = 0; // filter: none
            for (int x = 0; x < map.Width; x++, o += 2)
                BinaryPrimitives.WriteUInt16BigEndian(raw.AsSpan(o), (ushort)map.Labels[y * map.Width + x]);
        }
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, map.Width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), map.Height);
        header[8] = 16; // bit depth; colour type 0 (grey), compression, filter and interlace 0
        using var compressed = new MemoryStream();
        using (var deflate = new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true)) deflate.Write(raw);
        AtomicFile.Write(path, tmp =>
        {
            using var file = File.Create(tmp);
            file.Write(PngSignature);
            WriteChunk(file, "IHDR", header);
            WriteChunk(file, "IDAT", compressed.ToArray());
            WriteChunk(file, "IEND", []);
        });
    }

    static void WriteChunk(Stream stream, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        stream.Write(word);
        var typed = new byte[4 + data.Length];
        Encoding.ASCII.GetBytes(type, typed);
        data.CopyTo(typed, 4);
        stream.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32(typed));
        stream.Write(word);
    }

    /// <summary>The CRC-32 of PNG chunks (ISO 3309, polynomial 0xEDB88320, reflected).</summary>
    static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }

    static readonly byte[] PngSignature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>Grey PNG (colour type 0), 8 or 16 bits, not interlaced: IDAT inflated, scanline filters undone (PNG spec 9).</summary>
    static LabelMap ReadPng(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (!bytes.AsSpan(0, Math.Min(8, bytes.Length)).SequenceEqual(PngSignature)) throw new HistoException($"{path}: not a PNG file");
        int width = 0, height = 0, depth = 0, colourType = -1, interlace = 0;
        using var idat = new MemoryStream();
        for (int at = 8; at + 8 <= bytes.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(at));
            string type = Encoding.ASCII.GetString(bytes, at + 4, 4);
            var data = bytes.AsSpan(at + 8, length);
            if (type == "IHDR")
            {
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                (depth, colourType, interlace) = (data[8], data[9], data[12]);
            }
            else if (type == "IDAT") idat.Write(data);
            else if (type == "IEND") break;
            at += 12 + length;
        }
        if (colourType != 0 || depth is not (8 or 16) || interlace != 0)
            throw new HistoException($"{path}: a label map PNG must be grey (8- or 16-bit, not interlaced); this one has colour type "
                + $"{colourType}, {depth} bits{(interlace != 0 ? ", interlaced" : "")}");
        int bytesPerPixel = depth / 8, stride = width * bytesPerPixel;
        var raw = new byte[(stride + 1) * height];
        idat.Position = 0;
        using (var inflate = new ZLibStream(idat, CompressionMode.Decompress)) inflate.ReadExactly(raw);
        var previous = new byte[stride];
        var row = new byte[stride];
        var labels = new int[width * height];
        for (int y = 0; y < height; y++)
        {
            int filter = raw[y * (stride + 1)];
            raw.AsSpan(y * (stride + 1) + 1, stride).CopyTo(row);
            Unfilter(filter, row, previous, bytesPerPixel);
            for (int x = 0; x < width; x++)
                labels[y * width + x] = bytesPerPixel == 2 ? BinaryPrimitives.ReadUInt16BigEndian(row.AsSpan(2 * x)) : row[x];
            (previous, row) = (row, previous);
        }
        return new LabelMap(width, height, labels);
    }

    static void Unfilter(int filter, byte[] row, byte[] previous, int bpp)
    {
        for (int i = 0; i < row.Length; i++)
        {
            int left = i >= bpp ? row[i - bpp] : 0, up = previous[i], upLeft = i >= bpp ? previous[i - bpp] : 0;
            row[i] = (byte)(row[i] + filter switch
            {
                0 => 0,
                1 => left,
                2 => up,
                3 => (left + up) / 2,
                4 => Paeth(left, up, upLeft),
                _ => throw new HistoException($"PNG filter type {filter} is not defined"),
            });
        }
    }

    static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>NumPy .npy (format 1.0/2.0), a C-order 2-D array of 1-8 byte integers.</summary>
    static LabelMap ReadNpy(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new HistoException($"{path}: not a .npy file");
        int headerLength = bytes[6] == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8))
            : BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
        int offset = bytes[6] == 1 ? 10 : 12;
        string header = Encoding.ASCII.GetString(bytes, offset, headerLength);
        string descr = Field(header, "descr").Trim('\'', ' ');
        if (Field(header, "fortran_order").Trim() != "False")
            throw new HistoException($"{path}: Fortran-order arrays are not read; save C order");
        var shape = Field(header, "shape").Trim('(', ')', ' ').Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(int.Parse).ToArray();
        if (shape.Length != 2) throw new HistoException($"{path}: a label map is 2-D; this array has shape ({string.Join(", ", shape)})");
        var data = bytes.AsSpan(offset + headerLength);
        int n = shape[0] * shape[1];
        var labels = new int[n];
        bool little = descr[0] is '<' or '|';
        int size = int.Parse(descr[2..]);
        for (int i = 0; i < n; i++)
        {
            var v = data.Slice(i * size, size);
            long value = (descr[1], size) switch
            {
                ('u' or 'i' or 'b', 1) => descr[1] == 'i' ? (sbyte)v[0] : v[0],
                ('u', 2) => little ? BinaryPrimitives.ReadUInt16LittleEndian(v) : BinaryPrimitives.ReadUInt16BigEndian(v),
                ('i', 2) => little ? BinaryPrimitives.ReadInt16LittleEndian(v) : BinaryPrimitives.ReadInt16BigEndian(v),
                ('u', 4) => little ? BinaryPrimitives.ReadUInt32LittleEndian(v) : BinaryPrimitives.ReadUInt32BigEndian(v),
                ('i', 4) => little ? BinaryPrimitives.ReadInt32LittleEndian(v) : BinaryPrimitives.ReadInt32BigEndian(v),
                ('u', 8) => (long)(little ? BinaryPrimitives.ReadUInt64LittleEndian(v) : BinaryPrimitives.ReadUInt64BigEndian(v)),
                ('i', 8) => little ? BinaryPrimitives.ReadInt64LittleEndian(v) : BinaryPrimitives.ReadInt64BigEndian(v),
                _ => throw new HistoException($"{path}: dtype '{descr}' is not an integer label type"),
            };
            if (value < 0 || value > int.MaxValue) throw new HistoException($"{path}: label {value} at index {i} is out of range");
            labels[i] = (int)value;
        }
        return new LabelMap(shape[1], shape[0], labels);
    }

    static string Field(string header, string key)
    {
        int at = header.IndexOf($"'{key}'", StringComparison.Ordinal);
        if (at < 0) throw new HistoException($".npy header lacks '{key}'");
        int start = header.IndexOf(':', at) + 1;
        int end = key == "shape" ? header.IndexOf(')', start) + 1 : header.IndexOf(',', start);
        return header[start..end].Trim();
    }

    /// <summary>A grey TIFF of 8-, 16- or 32-bit unsigned ids, strips or tiles decoded by LibTiff.</summary>
    static LabelMap ReadTiff(string path)
    {
        using var tiff = BitMiracle.LibTiff.Classic.Tiff.Open(path, "r") ?? throw new HistoException($"{path}: not a readable TIFF");
        int width = tiff.GetField(BitMiracle.LibTiff.Classic.TiffTag.IMAGEWIDTH)[0].ToInt();
        int height = tiff.GetField(BitMiracle.LibTiff.Classic.TiffTag.IMAGELENGTH)[0].ToInt();
        int bits = tiff.GetField(BitMiracle.LibTiff.Classic.TiffTag.BITSPERSAMPLE)?[0].ToInt() ?? 8;
        int samples = tiff.GetField(BitMiracle.LibTiff.Classic.TiffTag.SAMPLESPERPIXEL)?[0].ToInt() ?? 1;
        if (samples != 1 || bits is not (8 or 16 or 32) || tiff.IsTiled())
            throw new HistoException($"{path}: a label map TIFF must be one grey channel of 8, 16 or 32 bits in strips");
        var labels = new int[width * height];
        var line = new byte[tiff.ScanlineSize()];
        for (int y = 0; y < height; y++)
        {
            if (!tiff.ReadScanline(line, y)) throw new HistoException($"{path}: row {y} could not be read");
            for (int x = 0; x < width; x++)
                labels[y * width + x] = bits switch
                {
                    8 => line[x],
                    16 => BinaryPrimitives.ReadUInt16LittleEndian(line.AsSpan(2 * x)),
                    _ => checked((int)BinaryPrimitives.ReadUInt32LittleEndian(line.AsSpan(4 * x))),
                };
        }
        return new LabelMap(width, height, labels);
    }
}
