using System.Buffers.Binary;
using Histo.Imaging;

namespace Histo.IO;

/// <summary>
/// Streams a pyramidal, tiled, JPEG-compressed TIFF (one IFD per level, largest first: the "generic tiled
/// TIFF" layout OpenSlide and libvips read). The caller feeds level 0 one row of tiles at a time; each
/// coarser level is built by 2x2 box averaging as rows arrive, so memory holds one tile row per level,
/// never the image. Switches to BigTIFF when the uncompressed level 0 would pass 4 GiB. Resolution goes
/// into XResolution/YResolution (pixels per centimetre), so the microns per pixel survive.
/// </summary>
public sealed class PyramidTiffWriter : IDisposable
{
    const ushort TagNewSubfileType = 254, TagImageWidth = 256, TagImageLength = 257, TagBitsPerSample = 258,
        TagCompression = 259, TagPhotometric = 262, TagImageDescription = 270, TagSamplesPerPixel = 277,
        TagXResolution = 282, TagYResolution = 283, TagPlanarConfig = 284, TagResolutionUnit = 296,
        TagSoftware = 305, TagTileWidth = 322, TagTileLength = 323, TagTileOffsets = 324, TagTileByteCounts = 325,
        TagYCbCrSubsampling = 530;
    const ushort TypeAscii = 2, TypeShort = 3, TypeLong = 4, TypeRational = 5, TypeLong8 = 16;
    const ushort CompressionJpeg = 7, PhotometricYCbCr = 6, ResolutionUnitCentimeter = 3;

    sealed class Level(int width, int height, int tileSize)
    {
        public readonly int Width = width, Height = height;
        public readonly int TilesAcross = (width + tileSize - 1) / tileSize, TilesDown = (height + tileSize - 1) / tileSize;
        public readonly List<long> Offsets = new(), ByteCounts = new();
        public byte[]? Pending; // rows waiting to fill one tile row of this level (levels > 0)
        public int PendingRows;
        public int RowsWritten;
    }

    readonly FileStream _file;
    readonly string _path, _tmpPath;
    readonly bool _bigTiff;
    readonly int _tileSize, _quality;
    readonly double _mpp;
    readonly string _description;
    readonly List<Level> _levels = new();
    readonly Dictionary<int, byte[]> _flatTileCache = new();
    bool _finished;

    public int LevelCount => _levels.Count;
    public int TileSize => _tileSize;

    /// <param name="minLevelSide">Coarser levels are added while the longest side exceeds this.</param>
    /// <param name="bigTiff">Force BigTIFF on or off; by default only when level 0 would pass 4 GiB uncompressed.</param>
    public PyramidTiffWriter(string path, int width, int height, double mpp, string description,
        int tileSize = 256, int jpegQuality = 90, int minLevelSide = 512, bool? bigTiff = null)
    {
        if (tileSize % 16 != 0) throw new ArgumentException("TIFF tile size must be a multiple of 16", nameof(tileSize));
        _path = path;
        _tmpPath = AtomicFile.TemporaryPath(path);
        _tileSize = tileSize;
        _quality = jpegQuality;
        _mpp = mpp;
        _description = description;
        _bigTiff = bigTiff ?? (long)width * height * 3 >= 4L << 30;
        int w = width, h = height;
        _levels.Add(new Level(w, h, tileSize));
        while (Math.Max(w, h) > minLevelSide)
        {
            w = (w + 1) / 2; h = (h + 1) / 2;
            _levels.Add(new Level(w, h, tileSize) { Pending = new byte[tileSize * w * 4] });
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        _file = new FileStream(_tmpPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20);
        _file.Write(new byte[_bigTiff ? 16 : 8]); // header, filled in by Finish
    }

    /// <summary>Level-0 sizes of each level, largest first.</summary>
    public IReadOnlyList<(int Width, int Height)> LevelSizes => _levels.Select(l => (l.Width, l.Height)).ToList();

    /// <summary>
    /// Appends the next row of level-0 tiles: <paramref name="strip"/> is full width and TileSize rows high
    /// (fewer for the last row).
    /// </summary>
    public void WriteLevel0Rows(RgbaImage strip)
    {
        var level = _levels[0];
        int expected = Math.Min(_tileSize, level.Height - level.RowsWritten);
        if (strip.Width != level.Width || strip.Height != expected)
            throw new ArgumentException($"expected a strip of {level.Width}x{expected}, got {strip.Width}x{strip.Height}");
        WriteTileRow(0, strip.Pixels, strip.Height);
    }

    void WriteTileRow(int levelIndex, byte[] rows, int rowCount)
    {
        var level = _levels[levelIndex];
        var encoded = new byte[level.TilesAcross][];
        Parallel.For(0, level.TilesAcross, t => encoded[t] = EncodeTile(rows, level.Width, rowCount, t * _tileSize));
        foreach (var tile in encoded)
        {
            level.Offsets.Add(_file.Position);
            level.ByteCounts.Add(tile.Length);
            _file.Write(tile);
            if ((_file.Position & 1) != 0) _file.WriteByte(0); // TIFF offsets are word-aligned
        }
        level.RowsWritten += rowCount;
        if (levelIndex + 1 < _levels.Count) PushDownsampled(levelIndex + 1, rows, level.Width, rowCount);
    }

    byte[] EncodeTile(byte[] rows, int stripWidth, int rowCount, int x0)
    {
        int s = _tileSize;
        int copyWidth = Math.Min(s, stripWidth - x0);
        var tile = new RgbaImage(s, s);
        // Edge tiles are padded by repeating the last column/row, which keeps JPEG blocks smooth.
        for (int y = 0; y < s; y++)
        {
            int sy = Math.Min(y, rowCount - 1);
            var src = rows.AsSpan((sy * stripWidth + x0) * 4, copyWidth * 4);
            var dst = tile.Pixels.AsSpan(y * s * 4, s * 4);
            src.CopyTo(dst);
            for (int x = copyWidth; x < s; x++) src.Slice((copyWidth - 1) * 4, 4).CopyTo(dst.Slice(x * 4, 4));
        }
        // Background tiles are all one colour: encode each colour once.
        uint first = BitConverter.ToUInt32(tile.Pixels, 0);
        if (System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(tile.Pixels.AsSpan()).IndexOfAnyExcept(first) < 0)
        {
            lock (_flatTileCache)
            {
                if (_flatTileCache.TryGetValue((int)first, out var cached)) return cached;
                return _flatTileCache[(int)first] = tile.EncodeJpeg(_quality);
            }
        }
        return tile.EncodeJpeg(_quality);
    }

    /// <summary>2x2 box-averages <paramref name="rowCount"/> rows of the finer level into the next level's pending rows.</summary>
    void PushDownsampled(int levelIndex, byte[] rows, int fineWidth, int rowCount)
    {
        var level = _levels[levelIndex];
        int outRows = (rowCount + 1) / 2;
        var pending = level.Pending!;
        Parallel.For(0, outRows, oy =>
        {
            int y0 = 2 * oy, y1 = Math.Min(2 * oy + 1, rowCount - 1);
            var dst = pending.AsSpan((level.PendingRows + oy) * level.Width * 4, level.Width * 4);
            for (int ox = 0; ox < level.Width; ox++)
            {
                int x0 = 2 * ox, x1 = Math.Min(2 * ox + 1, fineWidth - 1);
                int a = (y0 * fineWidth + x0) * 4, b = (y0 * fineWidth + x1) * 4, c = (y1 * fineWidth + x0) * 4, d = (y1 * fineWidth + x1) * 4;
                for (int ch = 0; ch < 4; ch++)
                    dst[ox * 4 + ch] = (byte)((rows[a + ch] + rows[b + ch] + rows[c + ch] + rows[d + ch] + 2) >> 2);
            }
        });
        level.PendingRows += outRows;
        int rowsLeft = level.Height - level.RowsWritten;
        if (level.PendingRows >= Math.Min(_tileSize, rowsLeft)) FlushPending(levelIndex);
    }

    void FlushPending(int levelIndex)
    {
        var level = _levels[levelIndex];
        if (level.PendingRows == 0) return;
        var rows = level.Pending!;
        int count = level.PendingRows;
        level.Pending = new byte[_tileSize * level.Width * 4];
        level.PendingRows = 0;
        WriteTileRow(levelIndex, rows, count);
    }

    /// <summary>Writes the directories and renames the file into place.</summary>
    public void Finish()
    {
        if (_levels[0].RowsWritten != _levels[0].Height)
            throw new InvalidOperationException($"only {_levels[0].RowsWritten} of {_levels[0].Height} rows were written");
        for (int i = 1; i < _levels.Count; i++) FlushPending(i);
        long previousNextPointer = _bigTiff ? 8 : 4;
        for (int i = 0; i < _levels.Count; i++)
        {
            long ifd = WriteDirectory(_levels[i], i);
            _file.Position = previousNextPointer;
            WriteOffset(ifd);
            _file.Seek(0, SeekOrigin.End);
            previousNextPointer = ifd + (_bigTiff ? 8 + 20L * DirectoryEntryCount : 2 + 12L * DirectoryEntryCount);
        }
        _file.Position = 0;
        if (_bigTiff) _file.Write([0x49, 0x49, 43, 0, 8, 0, 0, 0]);
        else _file.Write([0x49, 0x49, 42, 0]);
        _file.Flush(flushToDisk: false);
        _file.Dispose();
        File.Move(_tmpPath, _path, overwrite: true);
        _finished = true;
    }

    const int DirectoryEntryCount = 18;

    long WriteDirectory(Level level, int index)
    {
        var entries = new List<(ushort Tag, ushort Type, long Count, byte[] Data)>
        {
            (TagNewSubfileType, TypeLong, 1, U32(index == 0 ? 0u : 1u)),
            (TagImageWidth, TypeLong, 1, U32((uint)level.Width)),
            (TagImageLength, TypeLong, 1, U32((uint)level.Height)),
            (TagBitsPerSample, TypeShort, 3, U16s(8, 8, 8)),
            (TagCompression, TypeShort, 1, U16s(CompressionJpeg)),
            (TagPhotometric, TypeShort, 1, U16s(PhotometricYCbCr)),
            (TagImageDescription, TypeAscii, 0, Ascii(_description)),
            (TagSamplesPerPixel, TypeShort, 1, U16s(3)),
            (TagXResolution, TypeRational, 1, Rational(1e4 / (_mpp * (double)_levels[0].Width / level.Width))),
            (TagYResolution, TypeRational, 1, Rational(1e4 / (_mpp * (double)_levels[0].Height / level.Height))),
            (TagPlanarConfig, TypeShort, 1, U16s(1)),
            (TagResolutionUnit, TypeShort, 1, U16s(ResolutionUnitCentimeter)),
            (TagSoftware, TypeAscii, 0, Ascii("Histo")),
            (TagTileWidth, TypeLong, 1, U32((uint)_tileSize)),
            (TagTileLength, TypeLong, 1, U32((uint)_tileSize)),
            (TagTileOffsets, _bigTiff ? TypeLong8 : TypeLong, level.Offsets.Count, Offsets(level.Offsets)),
            (TagTileByteCounts, _bigTiff ? TypeLong8 : TypeLong, level.ByteCounts.Count, Offsets(level.ByteCounts)),
            (TagYCbCrSubsampling, TypeShort, 2, U16s(2, 2)),
        };
        if (entries.Count != DirectoryEntryCount) throw new InvalidOperationException("directory entry count changed");
        int inline = _bigTiff ? 8 : 4;
        // External values first, then the directory that points at them.
        var valueOffsets = new long[entries.Count];
        for (int i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            if (e.Data.Length <= inline) continue;
            if ((_file.Position & 1) != 0) _file.WriteByte(0);
            valueOffsets[i] = _file.Position;
            _file.Write(e.Data);
        }
        if ((_file.Position & 1) != 0) _file.WriteByte(0);
        long ifd = _file.Position;
        var buffer = new List<byte>();
        buffer.AddRange(_bigTiff ? BitConverter.GetBytes((ulong)entries.Count) : BitConverter.GetBytes((ushort)entries.Count));
        for (int i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            long count = e.Type == TypeAscii ? e.Data.Length : e.Count;
            buffer.AddRange(BitConverter.GetBytes(e.Tag));
            buffer.AddRange(BitConverter.GetBytes(e.Type));
            buffer.AddRange(_bigTiff ? BitConverter.GetBytes((ulong)count) : BitConverter.GetBytes((uint)count));
            var field = new byte[inline];
            if (e.Data.Length <= inline) e.Data.CopyTo(field, 0);
            else if (_bigTiff) BinaryPrimitives.WriteUInt64LittleEndian(field, (ulong)valueOffsets[i]);
            else BinaryPrimitives.WriteUInt32LittleEndian(field, checked((uint)valueOffsets[i]));
            buffer.AddRange(field);
        }
        buffer.AddRange(new byte[inline]); // next IFD: patched by Finish
        _file.Write(buffer.ToArray());
        return ifd;
    }

    void WriteOffset(long offset)
    {
        if (_bigTiff) _file.Write(BitConverter.GetBytes((ulong)offset));
        else _file.Write(BitConverter.GetBytes(checked((uint)offset)));
    }

    byte[] Offsets(List<long> values)
    {
        var bytes = new byte[values.Count * (_bigTiff ? 8 : 4)];
        for (int i = 0; i < values.Count; i++)
            if (_bigTiff) BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * 8), (ulong)values[i]);
            else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), checked((uint)values[i]));
        return bytes;
    }

    static byte[] U32(uint v) => BitConverter.GetBytes(v);
    static byte[] U16s(params ushort[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();
    static byte[] Ascii(string s) => System.Text.Encoding.ASCII.GetBytes(s + "\0");
    static byte[] Rational(double value)
    {
        const uint denominator = 1000;
        return [.. BitConverter.GetBytes((uint)Math.Round(value * denominator)), .. BitConverter.GetBytes(denominator)];
    }

    public void Dispose()
    {
        if (_finished) return;
        _file.Dispose();
        if (File.Exists(_tmpPath)) File.Delete(_tmpPath);
    }
}
