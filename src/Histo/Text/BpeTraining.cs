using System.Text;
using Histo.IO;

namespace Histo.Text;

/// <summary>
/// Byte-pair encoding learnt from a corpus (the seed's definition; Sennrich et al., ACL 2016, at the byte level as
/// GPT-2 and CLIP): words as CLIP pre-tokenises them, as byte symbols with the last one word-final; repeatedly the
/// adjacent pair that occurs most often (over words, weighted by their counts; ties to the smallest pair in ordinal
/// order) is merged, until the vocabulary has the asked size (512 byte symbols, the merges, two special tokens).
/// </summary>
public static class BpeTraining
{
    public const string MergesFileName = "merges.txt";

    /// <summary>What the header line of a merges file this class wrote contains.</summary>
    public const string HeaderMark = "histo bpe-train";

    /// <summary>The vocabulary without merges: 256 byte symbols, the same word-final, start and end of text.</summary>
    public const int BaseVocabularySize = 2 * 256 + 2;

    public static List<(string First, string Second)> Train(IEnumerable<string> corpus, int vocabularySize)
    {
        Require.AtLeast("--vocab-size", vocabularySize, BaseVocabularySize);
        var counts = new Dictionary<string, (List<string> Symbols, long Count)>(StringComparer.Ordinal);
        foreach (var line in corpus)
            foreach (System.Text.RegularExpressions.Match m in BytePairEncoding.Pattern.Matches(BytePairEncoding.Clean(line)))
            {
                if (m.Value is BytePairEncoding.StartOfText or BytePairEncoding.EndOfText) continue;
                counts[m.Value] = counts.TryGetValue(m.Value, out var e)
                    ? (e.Symbols, e.Count + 1) : (BytePairEncoding.Symbols(m.Value), 1);
            }
        var words = counts.Values.Select(v => (v.Symbols, v.Count)).ToList();
        var merges = new List<(string, string)>();
        var pairCounts = new Dictionary<(string, string), long>();
        while (merges.Count < vocabularySize - BaseVocabularySize)
        {
            pairCounts.Clear();
            foreach (var (symbols, n) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    pairCounts[(symbols[i], symbols[i + 1])] = pairCounts.GetValueOrDefault((symbols[i], symbols[i + 1])) + n;
            if (pairCounts.Count == 0) break;
            var best = pairCounts.First();
            foreach (var kv in pairCounts)
                if (kv.Value > best.Value || (kv.Value == best.Value && Compare(kv.Key, best.Key) < 0)) best = kv;
            merges.Add(best.Key);
            for (int w = 0; w < words.Count; w++) words[w] = (BytePairEncoding.Join(words[w].Symbols, best.Key), words[w].Count);
        }
        return merges;
    }

    /// <summary>Ordinal (code-point) order of pairs, first symbol then second: Python's tuple order of str.</summary>
    static int Compare((string, string) a, (string, string) b)
    {
        int c = string.CompareOrdinal(a.Item1, b.Item1);
        return c != 0 ? c : string.CompareOrdinal(a.Item2, b.Item2);
    }

    /// <summary>Trains on the lines of <paramref name="corpusPath"/> and writes <c>DIR/merges.txt</c> (CLIP's layout).</summary>
    public static (int Merges, string Path) TrainFile(string corpusPath, int vocabularySize, string outputDir)
    {
        if (!File.Exists(corpusPath)) throw new HistoException($"{corpusPath}: no such corpus file");
        var merges = Train(File.ReadLines(corpusPath), vocabularySize);
        JobFolder.CreateDirectory(outputDir);
        var text = new StringBuilder($"#version: 0.2 {HeaderMark}, vocabulary {BaseVocabularySize + merges.Count}\n");
        foreach (var (a, b) in merges) text.Append(a).Append(' ').Append(b).Append('\n');
        string path = Path.Combine(outputDir, MergesFileName);
        AtomicFile.WriteAllText(path, text.ToString());
        return (merges.Count, path);
    }
}
