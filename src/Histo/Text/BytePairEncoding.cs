using System.Text;
using System.Text.RegularExpressions;

namespace Histo.Text;

/// <summary>
/// Byte-level byte-pair encoding as CLIP uses it (Radford et al., ICML 2021; OpenAI's <c>simple_tokenizer.py</c>, after
/// GPT-2 and Sennrich et al., ACL 2016): a word's UTF-8 bytes, each shown as one printable character (GPT-2's
/// byte-to-unicode table), the last one marked with <c>&lt;/w&gt;</c>; then, repeatedly, the adjacent pair with the lowest
/// merge rank is joined until no ranked pair is left. Vocabulary: the 256 byte symbols, the same with
/// <c>&lt;/w&gt;</c>, one entry per merge, then <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c>.
/// </summary>
public sealed class BytePairEncoding
{
    public const string EndOfWord = "</w>";
    public const string StartOfText = "<|startoftext|>", EndOfText = "<|endoftext|>";

    /// <summary>
    /// CLIP's pre-tokenisation: the special tokens, contractions, runs of letters, single digits, runs of anything else
    /// that is not space (ignoring case, on text already lower-cased).
    /// </summary>
    public static readonly Regex Pattern = new(
        @"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled);

    /// <summary>GPT-2's table: printable bytes stand for themselves, the others for code points from 256 up, in order.</summary>
    public static readonly string[] ByteSymbols;

    /// <summary>The bytes in the table's order: the printable ones, then the rest, each group in byte order.</summary>
    static readonly int[] TableOrder;

    static BytePairEncoding() => (ByteSymbols, TableOrder) = BuildByteSymbols();

    readonly Dictionary<(string, string), int> _ranks = new();
    readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    readonly Lock _cacheLock = new();

    public IReadOnlyList<(string First, string Second)> Merges { get; }
    /// <summary>Merges plus 514, the largest id + 1 (what a text tower's embedding table must hold).</summary>
    public int VocabularySize { get; }
    public int StartOfTextId => _ids[StartOfText];
    public int EndOfTextId => _ids[EndOfText];

    public BytePairEncoding(IReadOnlyList<(string First, string Second)> merges)
    {
        Merges = merges;
        // Ids follow the table's order (printable bytes first), not byte order. A merge or symbol listed twice keeps
        // its later rank and id, as CLIP's dicts built from zip(..., range(...)) do.
        int id = 0;
        foreach (int b in TableOrder) _ids[ByteSymbols[b]] = id++;
        foreach (int b in TableOrder) _ids[ByteSymbols[b] + EndOfWord] = id++;
        for (int i = 0; i < merges.Count; i++)
        {
            _ranks[merges[i]] = i;
            _ids[merges[i].First + merges[i].Second] = id++;
        }
        _ids[StartOfText] = id++;
        _ids[EndOfText] = id;
        VocabularySize = id + 1;
    }

    /// <summary>A word (a pre-tokenised piece of cleaned text) as its byte symbols, the last one marked as word-final.</summary>
    public static List<string> Symbols(string word)
    {
        var bytes = Encoding.UTF8.GetBytes(word);
        var symbols = new List<string>(bytes.Length);
        foreach (var b in bytes) symbols.Add(ByteSymbols[b]);
        symbols[^1] += EndOfWord;
        return symbols;
    }

    /// <summary>The ids of one pre-tokenised word.</summary>
    public int[] EncodeWord(string word)
    {
        if (word is StartOfText or EndOfText) return [_ids[word]];
        lock (_cacheLock) if (_cache.TryGetValue(word, out var cached)) return cached;
        var symbols = Symbols(word);
        while (symbols.Count > 1)
        {
            // The ranked pair of lowest rank; every occurrence of it is joined, left to right.
            (string, string)? best = null;
            int bestRank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (_ranks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank)
                {
                    bestRank = rank;
                    best = (symbols[i], symbols[i + 1]);
                }
            if (best is null) break;
            symbols = Join(symbols, best.Value);
        }
        var ids = symbols.Select(s => _ids[s]).ToArray();
        lock (_cacheLock) _cache[word] = ids;
        return ids;
    }

    /// <summary>Joins every non-overlapping occurrence of <paramref name="pair"/>, scanning left to right.</summary>
    public static List<string> Join(List<string> symbols, (string First, string Second) pair)
    {
        var joined = new List<string>(symbols.Count);
        for (int i = 0; i < symbols.Count; i++)
        {
            if (i + 1 < symbols.Count && symbols[i] == pair.First && symbols[i + 1] == pair.Second)
            {
                joined.Add(pair.First + pair.Second);
                i++;
            }
            else joined.Add(symbols[i]);
        }
        return joined;
    }

    /// <summary>
    /// CLIP's clean-up before pre-tokenisation: HTML entities decoded twice, whitespace runs collapsed to one space,
    /// trimmed, lower case. (CLIP also repairs mojibake with ftfy first; Histo does not.)
    /// </summary>
    public static string Clean(string text)
    {
        text = System.Net.WebUtility.HtmlDecode(System.Net.WebUtility.HtmlDecode(text)).Trim();
        return Whitespace.Replace(text, " ").Trim().ToLowerInvariant();
    }

    static readonly Regex Whitespace = new(@"\s+", RegexOptions.Compiled);

    static (string[] Symbols, int[] Order) BuildByteSymbols()
    {
        var printable = new List<int>();
        for (int b = '!'; b <= '~'; b++) printable.Add(b);
        for (int b = '¡'; b <= '¬'; b++) printable.Add(b);
        for (int b = '®'; b <= 'ÿ'; b++) printable.Add(b);
        var symbols = new string[256];
        foreach (int b in printable) symbols[b] = ((char)b).ToString();
        int next = 256;
        var order = new List<int>(printable);
        for (int b = 0; b < 256; b++)
            if (symbols[b] is null) { symbols[b] = ((char)next++).ToString(); order.Add(b); }
        return (symbols, order.ToArray());
    }
}
