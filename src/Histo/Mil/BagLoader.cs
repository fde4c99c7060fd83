using System.Collections.Concurrent;
using Histo.IO;
using static TorchSharp.torch;

namespace Histo.Mil;

/// <summary>
/// Bags' features read from their <c>.h5</c> files when training asks for them, so a cohort larger than memory (1,000 slides
/// x 20,000 patches x 1,024-d is 80 GB) trains in bounded memory. A least-recently-used cache keeps up to
/// <see cref="CacheBytes"/> of features (a cohort that fits is read from disk once per run, as if every bag were kept), and
/// a background reader reads the next <see cref="Prefetch"/> uncached bags of the order while the current one trains.
/// The reader only parses files (managed code); tensors are made and freed on the caller's thread, so no TorchSharp call
/// runs off it (README, Platform notes). Files are read into at most <see cref="Prefetch"/> + 1 reused buffers, so reading
/// makes no garbage per bag. Memory: the cache, plus the bag in use, plus those buffers.
/// </summary>
public sealed class BagLoader : IDisposable
{
    /// <summary>Bags read ahead: one hides a read behind a step that takes longer; two absorb one slow read.</summary>
    public const int DefaultPrefetch = 2;

    /// <summary>A quarter of the memory this process may use (physical memory or the container's limit).</summary>
    public static long DefaultCacheBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4;

    readonly LinkedList<(string Path, Tensor Features)> _byUse = new();   // most recently used first
    readonly Dictionary<string, LinkedListNode<(string Path, Tensor Features)>> _cached = new();
    readonly ConcurrentBag<float[]> _buffers = new();
    /// <summary>Bytes of evicted bags between two malloc_trim calls.</summary>
    const long TrimEvery = 256L << 20;
    long _evictedSinceTrim;

    /// <param name="cacheBytes">Most bytes of features kept between uses (0: none, every use reads the file).</param>
    /// <param name="prefetch">Bags read ahead on the background thread (0: read when asked).</param>
    public BagLoader(long cacheBytes, int prefetch = DefaultPrefetch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cacheBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(prefetch);
        CacheBytes = cacheBytes;
        Prefetch = prefetch;
    }

    public long CacheBytes { get; }
    public int Prefetch { get; }
    /// <summary>Bytes of features in the cache now.</summary>
    public long CachedBytes { get; private set; }
    /// <summary>Files read so far (cache misses), for tests and benchmarks.</summary>
    public int Reads { get; private set; }

    /// <summary>
    /// The bags in <paramref name="order"/> with their features [N, D]. A tensor belongs to the loader and is valid until the
    /// next bag is asked for: use it within the loop body, do not dispose or keep it.
    /// </summary>
    public IEnumerable<(MilBag Bag, Tensor Features)> Stream(IReadOnlyList<MilBag> order)
    {
        var reading = new Dictionary<int, Task<(float[] Buffer, int Rows, int Dim)>>();
        for (int i = 0; i < order.Count; i++)
        {
            for (int j = i + 1; j <= Math.Min(order.Count - 1, i + Prefetch); j++)
                if (!reading.ContainsKey(j) && !_cached.ContainsKey(order[j].FeaturesPath))
                {
                    string path = order[j].FeaturesPath;
                    reading[j] = Task.Run(() => PatchFeatures.ReadFeaturesInto(path, Rent));
                }
            var bag = order[i];
            reading.Remove(i, out var read);
            if (_cached.TryGetValue(bag.FeaturesPath, out var node))
            {
                _byUse.Remove(node);
                _byUse.AddFirst(node);
                yield return (bag, node.Value.Features);
                continue;
            }
            // A read's exception (a bad file) surfaces here, on the bag that needs it, as the HistoException naming the file.
            var array = read is null ? PatchFeatures.ReadFeaturesInto(bag.FeaturesPath, Rent) : read.GetAwaiter().GetResult();
            Reads++;
            Tensor features;
            try { features = ToTensor(bag.FeaturesPath, array); }
            finally { _buffers.Add(array.Buffer); }
            yield return (bag, Add(bag.FeaturesPath, features));
        }
    }

    /// <summary>One bag's features, not cached (the caller owns the tensor).</summary>
    public static Tensor Load(MilBag bag) => ToTensor(bag.FeaturesPath, PatchFeatures.ReadFeaturesInto(bag.FeaturesPath,
        count => new float[count]));

    /// <summary>A free buffer of at least <paramref name="count"/> values (one too small is dropped for a larger one).</summary>
    float[] Rent(long count) => _buffers.TryTake(out var buffer) && buffer.LongLength >= count ? buffer : new float[count];

    Tensor Add(string path, Tensor features)
    {
        long bytes = features.NumberOfElements * features.ElementSize;
        // Room is made before adding, so the bag in use stays valid even when it alone exceeds the budget.
        while (_byUse.Count > 0 && CachedBytes + bytes > CacheBytes) Evict(_byUse.Last!);
        // glibc's malloc raises its mmap threshold to each freed block's size (up to 32 MB), so evicted bags and the
        // steps' activations come to live in its heap, where freed memory is not returned: 200 bags of 2,000-20,000 x
        // 1,024 with a 2 GB cache peaked at 4.3 GB RSS. Free heap pages are handed back once TrimEvery bytes were evicted,
        // not after every eviction: trimming per bag made the next steps fault their activations' pages in again (1.7x
        // slower epochs on the mil bench without a cache).
        if (_evictedSinceTrim >= TrimEvery && OperatingSystem.IsLinux())
        {
            malloc_trim(0);
            _evictedSinceTrim = 0;
        }
        var node = _byUse.AddFirst((path, features));
        _cached[path] = node;
        CachedBytes += bytes;
        return features;
    }

    void Evict(LinkedListNode<(string Path, Tensor Features)> node)
    {
        _byUse.Remove(node);
        _cached.Remove(node.Value.Path);
        long bytes = node.Value.Features.NumberOfElements * node.Value.Features.ElementSize;
        CachedBytes -= bytes;
        _evictedSinceTrim += bytes;
        node.Value.Features.Dispose();
    }

    static Tensor ToTensor(string path, (float[] Buffer, int Rows, int Dim) array)
    {
        if (array.Rows == 0) throw new HistoException($"{path}: empty bag (no patches); re-tile the slide or remove it from the "
            + "labels CSV");
        // Kept across steps by the cache, so out of whichever dispose scope is open when it is read.
        var t = empty(array.Rows, array.Dim).DetachFromDisposeScope();
        // One memory copy into the tensor's storage (TensorAccessor.CopyFrom goes element by element); its byte span is an int
        // long, so bags over 2 GB take the slow path.
        var values = new ReadOnlySpan<float>(array.Buffer, 0, array.Rows * array.Dim);
        if ((long)values.Length * sizeof(float) <= int.MaxValue)
            values.CopyTo(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(t.bytes));
        else t.data<float>().CopyFrom(values);
        bool finite;
        using (NewDisposeScope()) finite = t.isfinite().all().item<bool>();
        if (!finite)
        {
            using var scope = NewDisposeScope();
            var first = (~t.isfinite()).nonzero()[0];
            long row = first[0].item<long>(), column = first[1].item<long>();
            float value = t[row, column].item<float>();
            t.Dispose();
            throw PatchFeatures.NonFinite(path, row, column, value);
        }
        return t;
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    static extern int malloc_trim(nuint pad);

    public void Dispose()
    {
        while (_byUse.Count > 0) Evict(_byUse.Last!);
    }
}
